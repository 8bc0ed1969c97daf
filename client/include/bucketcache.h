/*
 * bucketcache.h -- libbucketcache, the C client of a bucketcache cluster.
 *
 * WHAT IT DOES
 *   A bc_client_t connects to ZooKeeper, reads the cluster's client routing
 *   table (the "c" table: the owner group of every bucket) and each owner
 *   group's primary node, and watches both.  Every call hashes its key to
 *   its bucket (MurmurHash3_x86_32, seed 0, mod the cluster's bucket count;
 *   see docs/hashing.md) and talks the memcached text protocol straight to
 *   that bucket's primary node.
 *
 *   When a node answers "this bucket is not mine" (it moved, its owner is
 *   being migrated, the node is no longer primary) or a connection drops,
 *   the library refreshes its table and retries with a jittered exponential
 *   backoff until the call's deadline: the caller sees an answer the owner
 *   gave, or BC_CLIENT_ETIMEOUT -- never a value from a node that does not
 *   own the key.  While ZooKeeper is unreachable the library keeps routing
 *   by the last table it read.
 *
 * THREADS
 *   One bc_client_t may be used by any number of threads at once.  Each
 *   node gets a bounded pool of connections; the routing table is an
 *   immutable snapshot replaced atomically when ZooKeeper reports a change,
 *   so calls never wait for a table update and never take a global lock.
 *   Only bc_client_destroy() must not run concurrently with other calls on
 *   the same client.
 *
 * MEMORY
 *   Every function says who owns each pointer.  In short: the library never
 *   keeps a pointer the caller passed in (keys, values and options are
 *   copied or used during the call only), and everything it hands out
 *   (values, error strings aside) is malloc'd and released by the caller
 *   with bc_client_free() / bc_client_items_free().
 *
 * ERRORS
 *   Every fallible function returns an int: BC_CLIENT_OK (0) or one of the
 *   negative BC_CLIENT_E* codes below; bc_strerror() describes a code.
 *
 * LINKING
 *   pkg-config --cflags --libs bucketcache
 *   Only the bc_client_* functions and bc_strerror() are exported.
 */
#ifndef BUCKETCACHE_H
#define BUCKETCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define BC_CLIENT_API __attribute__((visibility("default")))
#else
#define BC_CLIENT_API
#endif

#define BC_CLIENT_VERSION_MAJOR 0
#define BC_CLIENT_VERSION_MINOR 1

/* ---- error codes ---- */

#define BC_CLIENT_OK           0
#define BC_CLIENT_ENOTFOUND   -1   /* no such key (a cache miss), or nothing to delete/touch/incr */
#define BC_CLIENT_ENOTSTORED  -2   /* add: the key exists; replace: it does not */
#define BC_CLIENT_EINVAL      -3   /* bad argument: NULL pointer, key not 1..250 bytes of
                                      printable non-space bytes, bad option */
#define BC_CLIENT_ENOMEM      -4   /* out of memory */
#define BC_CLIENT_ETIMEOUT    -5   /* the deadline passed before the owner answered */
#define BC_CLIENT_ENOOWNER    -6   /* the key's bucket has no owner (its group is down) */
#define BC_CLIENT_ETOOLARGE   -7   /* value larger than the node or max_value_bytes accepts */
#define BC_CLIENT_ENONNUMERIC -8   /* incr/decr on a value that is not a decimal number */
#define BC_CLIENT_EINDOUBT    -9   /* the connection dropped after an add/incr/decr was sent:
                                      it may or may not have been applied (not retried) */
#define BC_CLIENT_ESERVER     -10  /* the node reported a server error (e.g. out of memory) */
#define BC_CLIENT_EPROTO      -11  /* a node sent a malformed or unexpected reply */
#define BC_CLIENT_ENOCLUSTER  -12  /* bc_client_create: no such cluster in ZooKeeper */
#define BC_CLIENT_EZK         -13  /* bc_client_create: ZooKeeper unreachable or failing */
#define BC_CLIENT_EBADTABLE   -14  /* bc_client_create: malformed cluster config or table */
#define BC_CLIENT_ELOADER     -15  /* bc_client_get_or_load: the loader failed */
#define BC_CLIENT_EEXISTS     -16  /* cas: the item changed since it was read (its CAS differs) */
#define BC_CLIENT_EACCES      -17  /* bc_client_create: ZooKeeper refused access to the cluster
                                      (credentials missing or wrong: zk_auth_file) */
#define BC_CLIENT_ENOTINSYNC  -18  /* a write: the key's group had fewer backups in sync than its
                                      min_in_sync until the deadline, so its primary refused
                                      the write (not applied; retried until then) */

/*
 * A short, static, human-readable description of an error code; never
 * NULL (unknown codes give "unknown error").  Owned by the library.
 */
BC_CLIENT_API const char *bc_strerror(int code);

/* ---- logging ---- */

#define BC_CLIENT_LOG_ERROR 0
#define BC_CLIENT_LOG_WARN  1
#define BC_CLIENT_LOG_INFO  2
#define BC_CLIENT_LOG_DEBUG 3

/*
 * A log sink: level is a BC_CLIENT_LOG_* value; message is one line without
 * a newline, valid during the call only.  May be called from any thread,
 * including the library's own background threads, concurrently.
 */
typedef void (*bc_client_log_fn)(void *ctx, int level, const char *message);

/*
 * Sets where the library logs, for the whole process (all clients): fn with
 * ctx (both kept as given; ctx is never dereferenced by the library), or
 * fn == NULL for the default, which writes lines to stderr.  Messages above
 * max_level are dropped.  The default is stderr at BC_CLIENT_LOG_WARN.
 * Call it before bc_client_create() or at any time; it is thread-safe.
 */
BC_CLIENT_API void bc_client_set_log(bc_client_log_fn fn, void *ctx, int max_level);

/* ---- creating a client ---- */

typedef struct bc_client bc_client_t;

typedef struct bc_client_options {
    const char *zk_hosts;          /* "host:port[,host:port...]"; required; copied */
    const char *cluster;           /* cluster name; required; copied */
    int zk_session_timeout_ms;     /* default 10000 */
    int zk_connect_timeout_ms;     /* how long bc_client_create waits for ZooKeeper; 5000 */
    int timeout_ms;                /* deadline of a call given timeout_ms <= 0; 1000 */
    int max_conns_per_node;        /* connection pool bound per node; 8 */
    int refresh_interval_ms;       /* re-read the tables at least this often; 5000 */
    int retry_base_ms;             /* first backoff; doubles per retry; 1 */
    int retry_max_ms;              /* backoff cap; 100 */
    size_t max_value_bytes;        /* largest value sent or accepted; 16 MiB */
    int no_owner_is_miss;          /* 1: a bucket without owner reads as a miss; 0 */

    /* read-through (bc_client_get_or_load) */
    int negative_ttl_ms;           /* remember "loader found nothing" this long; 0 = off */
    size_t negative_cache_bytes;   /* bound of that memory; 1 MiB */

    /* hot-key near cache: an in-process copy of the hottest keys' values */
    size_t near_cache_bytes;       /* 0 = off (the default) */
    int near_cache_ttl_ms;         /* how stale a near-cached value may be; 1000 */
    int near_cache_min_hits;       /* reads of a key, recently, before it is cached; 4 */

    /* ZooKeeper credentials, for a cluster secured with digest ACLs
     * (docs/security.md).  A client that only routes needs read access:
     * give it the cluster's read-only identity.  At most one of: */
    const char *zk_auth_file;      /* a file holding "user:password" on one line, kept from
                                      other users (mode 0600 or 0640); NULL: none */
    const char *zk_auth;           /* "user:password" itself; NULL: none */

    /* TLS to the nodes' data ports (nodes started with -Z; docs/security.md).
     * Every node's certificate must chain to tls_ca_file and carry the
     * expected name, or the connection is refused (logged with OpenSSL's
     * reason; calls to that node then fail with BC_CLIENT_ETIMEOUT).
     * All strings are read during bc_client_create only (files loaded
     * then; a renewed CA or client certificate needs a new client). */
    int tls;                       /* 1: speak TLS to every node; 0 (default): plain TCP */
    const char *tls_ca_file;       /* PEM CAs the nodes' certificates chain to;
                                      NULL: the system's default CAs */
    const char *tls_cert_file;     /* PEM client certificate chain, for nodes that ask
                                      (ssl_verify_mode); NULL: none.  With tls_key_file. */
    const char *tls_key_file;      /* its PEM private key; NULL: none */
    const char *tls_server_name;   /* the name every node's certificate must carry (and
                                      SNI); NULL: the host of the node's registered data
                                      address (a DNS name or an IP address) */
    int tls_no_name_check;         /* 1: check the chain only, not the name; 0 */
} bc_client_options_t;

/* Fills *opts with the defaults above (zk_hosts and cluster NULL). */
BC_CLIENT_API void bc_client_options_init(bc_client_options_t *opts);

/*
 * Connects to ZooKeeper, reads the cluster's bucket count, its c table and
 * the owner groups' primaries, and starts the background thread that
 * watches them.  Returns once the first table is loaded.
 *
 * opts is read during the call only (its strings are copied).  On success
 * *out is a new client owned by the caller, released with
 * bc_client_destroy(); on error *out is NULL.
 *
 * The strings of opts (zk_auth_file's contents too) are read during the
 * call only; credentials are presented again on every new ZooKeeper
 * session.
 *
 * Errors: BC_CLIENT_EINVAL (opts, zk_hosts or cluster missing or invalid;
 * an unreadable or malformed zk_auth_file, or both zk_auth options given;
 * with tls, an unreadable tls_ca_file, tls_cert_file or tls_key_file, a key
 * not matching the certificate, or only one of the two given: the log
 * says which), BC_CLIENT_EACCES (ZooKeeper refused access:
 * credentials missing or wrong),
 * BC_CLIENT_EZK (ZooKeeper unreachable within zk_connect_timeout_ms, or an
 * error reading it), BC_CLIENT_ENOCLUSTER (the cluster does not exist),
 * BC_CLIENT_EBADTABLE (its config record or c table is malformed),
 * BC_CLIENT_ENOMEM.
 */
BC_CLIENT_API int bc_client_create(const bc_client_options_t *opts, bc_client_t **out);

/*
 * Stops the background thread, closes every connection and the ZooKeeper
 * session, and frees the client.  No other call on this client may be in
 * progress or follow.  NULL is accepted.
 */
BC_CLIENT_API void bc_client_destroy(bc_client_t *client);

/* ---- operations ----
 *
 * Common rules:
 *   key/klen      1..250 bytes, no control characters and no spaces; read
 *                 during the call only.
 *   timeout_ms    the call's deadline from now; <= 0 uses opts.timeout_ms.
 *   exptime       memcached's: 0 never expires, up to 30 days a number of
 *                 seconds from now, above that an absolute Unix time,
 *                 negative expires at once.
 *   Every operation may also return BC_CLIENT_EINVAL (bad arguments),
 *   BC_CLIENT_ENOMEM, BC_CLIENT_ETIMEOUT, BC_CLIENT_ENOOWNER,
 *   BC_CLIENT_ESERVER and BC_CLIENT_EPROTO.
 */

/*
 * Frees a value returned by bc_client_get / bc_client_get_or_load.  NULL is
 * accepted.
 */
BC_CLIENT_API void bc_client_free(void *value);

/*
 * Reads key.  On BC_CLIENT_OK, *value is a new malloc'd buffer of *vlen
 * bytes owned by the caller (bc_client_free), followed by a NUL byte not
 * counted in *vlen so text values can be used as C strings; flags (may be
 * NULL) receives the item's flags.  On any error *value is NULL and *vlen 0.
 * Errors: BC_CLIENT_ENOTFOUND (miss), the common ones.
 */
BC_CLIENT_API int bc_client_get(bc_client_t *client, const void *key, size_t klen, int timeout_ms,
                                void **value, size_t *vlen, uint32_t *flags);

/*
 * Store commands: set always stores; add only if the key is absent; replace
 * only if it is present.  value (vlen bytes, may be NULL when vlen is 0) is
 * read during the call only.
 * Errors: BC_CLIENT_ENOTSTORED (add/replace condition false),
 * BC_CLIENT_ETOOLARGE, BC_CLIENT_EINDOUBT (add only), the common ones.
 */
BC_CLIENT_API int bc_client_set(bc_client_t *client, const void *key, size_t klen,
                                const void *value, size_t vlen, uint32_t flags, int64_t exptime,
                                int timeout_ms);
BC_CLIENT_API int bc_client_add(bc_client_t *client, const void *key, size_t klen,
                                const void *value, size_t vlen, uint32_t flags, int64_t exptime,
                                int timeout_ms);
BC_CLIENT_API int bc_client_replace(bc_client_t *client, const void *key, size_t klen,
                                    const void *value, size_t vlen, uint32_t flags,
                                    int64_t exptime, int timeout_ms);

/*
 * Reads key with its CAS unique (memcached's gets), for a later
 * bc_client_cas.  As bc_client_get otherwise; *cas receives the value.
 * A backup promoted after a failover keeps the CAS values its primary
 * handed out, so a CAS read before a failover still works after it.
 */
BC_CLIENT_API int bc_client_gets(bc_client_t *client, const void *key, size_t klen,
                                 int timeout_ms, void **value, size_t *vlen, uint32_t *flags,
                                 uint64_t *cas);

/*
 * Stores value only if key still has the CAS unique `cas` (read with
 * bc_client_gets): the compare-and-swap of an optimistic read-modify-write.
 * Not retried once sent (a lost connection gives BC_CLIENT_EINDOUBT).
 * Errors: BC_CLIENT_EEXISTS (changed meanwhile: read again), BC_CLIENT_ENOTFOUND
 * (gone), BC_CLIENT_ETOOLARGE, BC_CLIENT_EINDOUBT, the common ones.
 */
BC_CLIENT_API int bc_client_cas(bc_client_t *client, const void *key, size_t klen,
                                const void *value, size_t vlen, uint32_t flags, int64_t exptime,
                                uint64_t cas, int timeout_ms);

/*
 * Appends (prepends) value to an existing item's value; its flags and
 * expiry stay.  Not retried once sent (BC_CLIENT_EINDOUBT).
 * Errors: BC_CLIENT_ENOTSTORED (no such key), BC_CLIENT_ETOOLARGE (the
 * result would be too large), BC_CLIENT_EINDOUBT, the common ones.
 */
BC_CLIENT_API int bc_client_append(bc_client_t *client, const void *key, size_t klen,
                                   const void *value, size_t vlen, int timeout_ms);
BC_CLIENT_API int bc_client_prepend(bc_client_t *client, const void *key, size_t klen,
                                    const void *value, size_t vlen, int timeout_ms);

/*
 * Deletes key.  Errors: BC_CLIENT_ENOTFOUND (nothing to delete), the
 * common ones.  If a connection dropped after the delete was sent and the
 * retry finds the key gone, BC_CLIENT_OK is returned: either way the key
 * no longer exists.
 */
BC_CLIENT_API int bc_client_delete(bc_client_t *client, const void *key, size_t klen,
                                   int timeout_ms);

/* Sets key's expiry time.  Errors: BC_CLIENT_ENOTFOUND, the common ones. */
BC_CLIENT_API int bc_client_touch(bc_client_t *client, const void *key, size_t klen,
                                  int64_t exptime, int timeout_ms);

/*
 * Adds delta to (incr) or subtracts it from (decr, stopping at 0) a decimal
 * value; result (may be NULL) receives the new value.  Not retried once
 * sent: a connection lost afterwards gives BC_CLIENT_EINDOUBT.
 * Errors: BC_CLIENT_ENOTFOUND, BC_CLIENT_ENONNUMERIC, BC_CLIENT_EINDOUBT,
 * the common ones.
 */
BC_CLIENT_API int bc_client_incr(bc_client_t *client, const void *key, size_t klen,
                                 uint64_t delta, uint64_t *result, int timeout_ms);
BC_CLIENT_API int bc_client_decr(bc_client_t *client, const void *key, size_t klen,
                                 uint64_t delta, uint64_t *result, int timeout_ms);

/* One key's outcome in a multi-get. */
typedef struct bc_client_item {
    int status;        /* BC_CLIENT_OK, BC_CLIENT_ENOTFOUND, or that key's error */
    void *value;       /* on OK: malloc'd, NUL-terminated, owned by the caller */
    size_t vlen;
    uint32_t flags;
} bc_client_item_t;

/*
 * Reads n keys at once: the keys are grouped by owner node and each node
 * gets its keys pipelined on one connection, all nodes in parallel.
 * keys[i] (klens[i] bytes) are read during the call only.  items is an
 * array of n elements owned by the caller; items[i] is the outcome of
 * keys[i] (request order; a key given twice is answered twice).  Free the
 * values with bc_client_items_free(items, n) (the array itself stays
 * the caller's).
 * Returns BC_CLIENT_OK when every item is OK or ENOTFOUND, otherwise the
 * status of the first other item (all items are still filled).  Errors
 * for the call as a whole: BC_CLIENT_EINVAL (NULL arrays with n > 0; an
 * invalid key only fails its own item), BC_CLIENT_ENOMEM.
 */
BC_CLIENT_API int bc_client_mget(bc_client_t *client, size_t n, const void *const *keys,
                                 const size_t *klens, int timeout_ms, bc_client_item_t *items);

/* Frees items[0..n)'s values and zeroes them.  items may be NULL if n is 0. */
BC_CLIENT_API void bc_client_items_free(bc_client_item_t *items, size_t n);

/* ---- read-through ---- */

/* What a loader returns for a key. */
typedef struct bc_client_loaded {
    void *value;       /* malloc()'d by the loader; the library takes it and free()s it */
    size_t vlen;
    uint32_t flags;    /* stored with the value */
    int64_t exptime;   /* stored with the value (memcached semantics); 0 = never */
} bc_client_loaded_t;

/*
 * Produces the value of a key the cache does not have.  key is valid during
 * the call only; *out is zeroed before the call.  Returns BC_CLIENT_OK with
 * out->value set (may be NULL if vlen is 0), BC_CLIENT_ENOTFOUND when the
 * origin has no such key (negative-cached if enabled), anything else for a
 * failure (reported as BC_CLIENT_ELOADER; any out->value is freed).  Runs
 * on the calling thread of one of the concurrent callers.
 */
typedef int (*bc_client_loader_fn)(void *ctx, const void *key, size_t klen,
                                   bc_client_loaded_t *out);

/*
 * Like bc_client_get, but on a miss (or a bucket without owner) calls
 * loader(ctx, key, ...), stores its value in the cluster with set (best
 * effort: a failed store is counted and logged, not returned) and returns
 * it.  Concurrent calls for the same key in this process share one
 * lookup and one load (single-flight); each caller gets its own copy.
 * With opts.negative_ttl_ms, a key the loader did not find answers
 * BC_CLIENT_ENOTFOUND without calling it again for that long.
 * ctx is passed to the loader as is.  Output ownership as bc_client_get.
 * Errors: BC_CLIENT_ENOTFOUND (the loader found nothing), BC_CLIENT_ELOADER,
 * the common ones (a caller that waits for another's load may time out on
 * its own deadline).
 */
BC_CLIENT_API int bc_client_get_or_load(bc_client_t *client, const void *key, size_t klen,
                                        bc_client_loader_fn loader, void *ctx, int timeout_ms,
                                        void **value, size_t *vlen, uint32_t *flags);

/* ---- introspection ---- */

typedef struct bc_client_stats {
    uint64_t ops;             /* keys operated on (a multi-get of n keys counts n) */
    uint64_t gets;            /* keys read (get, mget, get_or_load) */
    uint64_t hits;            /* reads that found a value (near cache included) */
    uint64_t misses;          /* reads that found nothing */
    uint64_t stores;          /* set/add/replace calls */
    uint64_t deletes;
    uint64_t touches;
    uint64_t ariths;          /* incr/decr */
    uint64_t errors;          /* calls that ended in an error other than NOTFOUND/NOTSTORED */
    uint64_t timeouts;        /* ... of which deadlines passed */
    uint64_t retries;         /* attempts after a first one */
    uint64_t refusals;        /* "not mine" answers from nodes (moved, read-only, ...) */
    uint64_t refreshes;       /* routing-table reloads from ZooKeeper */
    uint64_t table_updates;   /* new routing tables taken into use */
    uint64_t table_errors;    /* malformed tables or records seen in ZooKeeper (ignored) */
    uint64_t loads;           /* loader calls */
    uint64_t load_errors;     /* loader calls that failed */
    uint64_t load_shared;     /* get_or_load callers served by another caller's load */
    uint64_t negative_hits;   /* get_or_load answered from the negative cache */
    uint64_t near_hits;       /* reads answered by the near cache */
    uint64_t near_bytes;      /* bytes held by the near cache now */
    uint64_t near_items;      /* keys held by the near cache now */
    uint64_t connects;        /* connections opened */
    uint64_t connect_errors;  /* connection attempts that failed */
    uint64_t conn_drops;      /* connections lost or closed after an error */
    uint64_t table_epoch;     /* epoch of the routing table in use */
    uint32_t nbuckets;        /* the cluster's bucket count */
    uint32_t zk_connected;    /* 1 while the ZooKeeper session is connected */
} bc_client_stats_t;

/*
 * Copies the client's counters into *out (owned by the caller).  Counters
 * are read one by one, without stopping traffic.
 * Errors: BC_CLIENT_EINVAL (NULL argument).
 */
BC_CLIENT_API int bc_client_get_stats(bc_client_t *client, bc_client_stats_t *out);

/*
 * Where key is routed now: its bucket, the owner group (0: none) and the
 * owner's primary "host:port" (written into addr, addrlen bytes, "" when
 * unknown; may be NULL).  No network I/O.
 * Errors: BC_CLIENT_EINVAL.
 */
BC_CLIENT_API int bc_client_locate(bc_client_t *client, const void *key, size_t klen,
                                   uint32_t *bucket, uint32_t *group, char *addr, size_t addrlen);

#ifdef __cplusplus
}
#endif

#endif
