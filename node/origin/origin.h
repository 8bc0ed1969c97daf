/*
 * origin.h -- read-through on the node: a miss for a key this node owns
 * is filled from an HTTP origin, once per key however many ask.
 *
 * WHAT IT DOES
 *   With an origin configured (--origin URL, or the "origin" section of
 *   the config file, per key prefix if wanted), a get that misses on the
 *   bucket's primary asks the origin for the key's URL (url.h), stores
 *   the answer with the cache's normal store (so it replicates to the
 *   backups like any write) and answers every client waiting for it.
 *
 *     worker / admin thread                origin thread (libcurl multi)
 *     ---------------------                -----------------------------
 *     miss, route == SERVE
 *     bc_origin_fetch(key) --lock-->  fills[key]? join it (single-flight)
 *       connection parks               : new fill, queued (bounded)
 *                                      start <= max_inflight at once:
 *                                        GET url (keep-alive, timeouts)
 *                                      response: status, headers, body
 *                                        <= max item size
 *                                      2xx: item; route still SERVE?
 *                                        store (ADD)  ---> replication
 *                                      404..: negative cache
 *                                      5xx, timeout..: breaker counts
 *     mailbox (eventfd) <--lock----   every waiter: its result (an item
 *     done(): the command runs          reference each), posted to its
 *     again with the value,             thread's client mailbox
 *     the connection resumes
 *
 * BEHAVIOR (who fetches)
 *   Only the primary of the key's bucket fetches: bc_origin_fetch refuses
 *   a key whose bucket this node may not write (bc_node_cluster_route,
 *   write = true: another group's, a backup's, a migrating one, or while
 *   its write lease has lapsed), and the origin thread checks again before
 *   it stores and after (a bucket that left the group meanwhile loses the
 *   value at once).  A non-owner forwards the
 *   get to the owner (proto/forward.h); so one request fills the cluster,
 *   and no node keeps a copy of a key it does not own -- the duplicate
 *   copies imgfit-cache's stale peers made.  The store is an ADD: a value
 *   a client set while the fill was in flight wins.
 *
 *   The store runs on the origin thread, not on a worker, so a
 *   migration's fence (net/server.h, bc_server_passed) does not wait for
 *   it: a fill that passed its route check just before a bucket turned
 *   read-only may land after the export read the bucket.  The value is
 *   the origin's, so the destination merely fills it again; and the
 *   check after the store deletes it if the bucket has left by then.
 *
 * BOUNDS
 *   At most max_inflight requests at once, max_queue more keys waiting for
 *   a slot (each at most timeout_ms in the queue), BC_ORIGIN_MAX_WAITERS
 *   waiters per key; past these a miss is answered at once (BC_EBUSY).
 *   A body above the cache's max item size is an error, never a partial
 *   value; so is a truncated one.  The negative cache holds at most
 *   negative_max keys.  An origin whose requests fail breaker_failures
 *   times in a row is not asked for breaker_cooldown_ms (BC_EAGAIN at
 *   once); then one request probes it.
 *
 * THREADS
 *   bc_origin_t is shared by every thread; its lock (origin_int.h) guards
 *   the fills, the queue, the negative cache, the breakers and every
 *   client's mailbox.  A client belongs to one thread (a worker's event
 *   loop, or the admin thread), which alone calls fetch, cancel and
 *   deliver on it; completions run on that thread.
 */
#ifndef BC_ORIGIN_H
#define BC_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "bc_config.h"
#include "bc_metrics.h"
#include "bc_status.h"
#include "cluster/cluster.h"
#include "engine/cache.h"
#include "net/el.h"
#include "origin/url.h"

#define BC_ORIGIN_MAX_PREFIXES   16u
#define BC_ORIGIN_MAX_NEGATIVE   8u      /* statuses cached negatively */
#define BC_ORIGIN_MAX_WAITERS    4096u   /* per key (an item holds 65535 references) */
#define BC_ORIGIN_HEADER_NAME_MAX 64u

/* ---- configuration (origin_config.c) ---- */

typedef struct bc_origin_prefix {
    char prefix[BC_KEY_MAX_LEN + 1];   /* keys starting with it ... */
    char url[BC_ORIGIN_URL_MAX];       /* ... are fetched from this template */
} bc_origin_prefix_t;

typedef struct bc_origin_config {
    char url[BC_ORIGIN_URL_MAX];       /* every other key; "" = none */
    uint32_t nprefixes;                /* the longest matching prefix wins */
    bc_origin_prefix_t prefixes[BC_ORIGIN_MAX_PREFIXES];
    uint32_t connect_timeout_ms;       /* 500 */
    uint32_t timeout_ms;               /* one request, connect included; 1000 */
    uint32_t max_inflight;             /* requests at once; 32 */
    uint32_t max_queue;                /* keys waiting for a slot; 1024 */
    uint32_t default_ttl;              /* s, when the origin says nothing; 300 (0: none) */
    uint32_t max_ttl;                  /* s, caps every lifetime; 0 = no cap */
    uint32_t negative_ttl;             /* s a negative answer is remembered; 10 (0: off) */
    uint32_t negative_max;             /* keys remembered; 10000 */
    uint32_t nnegative;                /* statuses cached negatively: 404, 410 */
    uint16_t negative_statuses[BC_ORIGIN_MAX_NEGATIVE];
    char flags_header[BC_ORIGIN_HEADER_NAME_MAX];  /* client flags from it; "" = 0 */
    uint32_t breaker_failures;         /* failures in a row that open it; 5 (0: never) */
    uint32_t breaker_cooldown_ms;      /* how long it stays open; 5000 */
    char ca_file[1024];                /* TLS trust; "" = the system's */
} bc_origin_config_t;

/* The defaults above, no origin. */
void bc_origin_config_defaults(bc_origin_config_t *cfg);
/* True when some key has an origin. */
bool bc_origin_config_enabled(const bc_origin_config_t *cfg);
/*
 * --origin VALUE: "URL" (every key) or "PREFIX=URL" (keys starting with
 * PREFIX; repeatable).  Errors: BC_EINVAL with the reason in err.
 */
bc_status_t bc_origin_config_flag(bc_origin_config_t *cfg, const char *value, char *err,
                                  size_t err_len);
/*
 * The config file's "origin" section over *cfg (fields present only; an
 * absent section changes nothing).  Errors: BC_ECONFIG naming the file
 * and the field.
 */
bc_status_t bc_origin_config_apply_doc(bc_origin_config_t *cfg, const bc_config_doc_t *doc,
                                       char *err, size_t err_len);
/* The names of the section's fields, for the file's help text. */
extern const char *const bc_origin_config_fields[];

/* ---- the origin ---- */

typedef struct bc_origin bc_origin_t;
typedef struct bc_origin_client bc_origin_client_t;
typedef struct bc_origin_wait bc_origin_wait_t;

/* Why a fill failed: the error kinds counted and reported. */
#define BC_ORIGIN_ERRORS(X)                                                              \
    X(TIMEOUT,      "timeout",      "no complete answer within timeout_ms")             \
    X(CONNECT,      "connect",      "the origin could not be resolved or connected to") \
    X(HTTP_5XX,     "http_5xx",     "the origin answered 5xx")                          \
    X(HTTP_STATUS,  "http_status",  "another status that is neither a value nor a negative answer (3xx, 4xx)") \
    X(TOO_LARGE,    "too_large",    "the body exceeds the max item size")               \
    X(PROTOCOL,     "protocol",     "a malformed status line, header or flags value")  \
    X(RESET,        "reset",        "the connection was reset or closed mid-answer")   \
    X(TLS,          "tls",          "TLS handshake or certificate failure")             \
    X(NO_MEMORY,    "no_memory",    "no memory for the value")                          \
    X(OTHER,        "other",        "any other transfer failure")                       \
    X(OVERLOADED,   "overloaded",   "refused without a request: too many fills queued or waiters") \
    X(BREAKER_OPEN, "breaker_open", "refused without a request: the origin's circuit breaker is open")

typedef enum bc_origin_error {
    BC_ORIGIN_OK = 0,
#define BC__ORIGIN_ERR_ENUM(id, name, help) BC_ORIGIN_ERR_##id,
    BC_ORIGIN_ERRORS(BC__ORIGIN_ERR_ENUM)
#undef BC__ORIGIN_ERR_ENUM
    BC_ORIGIN_ERR_COUNT
} bc_origin_error_t;

/* "timeout", "http_5xx", ...; "ok" for BC_ORIGIN_OK. */
const char *bc_origin_error_name(bc_origin_error_t e);

/* What a waiter gets. */
typedef struct bc_origin_result {
    bc_status_t st;            /* BC_OK: item; BC_ENOTFOUND: the origin has no such
                                  key; otherwise a failure (error says which) */
    bc_origin_error_t error;
    uint16_t http_status;      /* the origin's, 0 when none came */
    bc_item_t *item;           /* BC_OK: a reference the callee owns */
} bc_origin_result_t;

/* A completion: runs on the client's thread (bc_origin_client_deliver). */
typedef void (*bc_origin_done_fn)(void *arg, uint32_t tag, bc_origin_result_t *res);

/*
 * Creates the origin for cfg (copied; bc_origin_config_enabled must hold)
 * over cache (borrowed; it must outlive the origin).  Nothing runs until
 * bc_origin_start.  *out is owned by the caller (bc_origin_destroy).
 * Errors: BC_EINVAL (a bad template), BC_ENOMEM, BC_EIO (libcurl failed
 * to initialise).
 */
bc_status_t bc_origin_create(const bc_origin_config_t *cfg, bc_cache_t *cache,
                             bc_origin_t **out);
/* In a cluster: fill only buckets this node is primary of (see BEHAVIOR).
 * cluster is borrowed and must outlive the origin.  Before start. */
void bc_origin_set_cluster(bc_origin_t *o, bc_node_cluster_t *cluster);
/* Starts the origin thread.  Errors: BC_ENOMEM. */
bc_status_t bc_origin_start(bc_origin_t *o);
/* Stops the thread: transfers in flight are abandoned and their waiters
 * get BC_ECLOSED; later fetches are refused with BC_ECLOSED.  Idempotent. */
void bc_origin_stop(bc_origin_t *o);
/* Stops if needed and frees; every client must be destroyed first.  NULL
 * is accepted. */
void bc_origin_destroy(bc_origin_t *o);

/* True when key[0..nkey) has an origin (a prefix or the default URL). */
bool bc_origin_has(const bc_origin_t *o, const char *key, size_t nkey);

/* ---- clients: one per thread that waits ---- */

/*
 * A client on a worker's event loop: completions are posted to it and an
 * eventfd registered on el wakes the loop, which delivers them.  el is
 * borrowed and must outlive the client.  Errors: BC_ENOMEM, BC_EIO.
 */
bc_status_t bc_origin_client_create_el(bc_origin_t *o, bc_el_t *el, bc_origin_client_t **out);
/*
 * A client whose thread has no loop (the admin port): notify(arg) is
 * called -- under the origin's lock, so it must only signal -- when
 * completions are posted; the thread then calls bc_origin_client_deliver.
 * Errors: BC_ENOMEM.
 */
bc_status_t bc_origin_client_create(bc_origin_t *o, void (*notify)(void *arg), void *arg,
                                    bc_origin_client_t **out);
/* Frees the client and every completion still posted to it.  Its thread
 * must have cancelled its waits (or be gone).  NULL is accepted. */
void bc_origin_client_destroy(bc_origin_client_t *c);
/* Calls the completions posted to c (its thread only). */
void bc_origin_client_deliver(bc_origin_client_t *c);

/*
 * Asks for key[0..nkey) (hash = bc_hash_key), which just missed in the
 * cache.  Returns:
 *   BC_OK         a fill is in flight (started or joined): done(arg, tag,
 *                 res) will be called exactly once, later, from
 *                 bc_origin_client_deliver -- unless cancelled; *out (may
 *                 be NULL) receives the handle for bc_origin_cancel
 *   BC_ENOTFOUND  no request: the key has no origin, or a negative answer
 *                 for it is remembered -- answer a miss
 *   BC_EEXISTS    no request: a fill of the key completed since the
 *                 caller's lookup -- look the cache up again
 *   BC_ENOTOWNER  no request: this node may not fill the key's bucket
 *   BC_EBUSY      no request: bounds reached (overloaded)
 *   BC_EAGAIN     no request: the origin's breaker is open
 *   BC_ECLOSED    no request: stopped
 *   BC_ENOMEM
 * done is never called for an error.
 */
bc_status_t bc_origin_fetch(bc_origin_client_t *c, const char *key, size_t nkey, uint32_t hash,
                            bc_origin_done_fn done, void *arg, uint32_t tag,
                            bc_origin_wait_t **out);
/* The waiter is going away: done will not be called (an item already
 * posted to it is released).  w is invalid afterwards. */
void bc_origin_cancel(bc_origin_client_t *c, bc_origin_wait_t *w);

/* ---- statistics (origin_stats.c) ---- */

/* Counters since start; every one is reported as STAT origin_<name>, in
 * /stats' "origin" object and as bucketcache_origin_<name>_total. */
#define BC_ORIGIN_STATS(X)                                                                  \
    X(misses,        "cache misses of keys with an origin, on this node as the owner")      \
    X(joined,        "misses that joined a fill already in flight (single-flight)")         \
    X(requests,      "HTTP requests sent to the origin")                                    \
    X(fills,         "values fetched and stored in the cache")                              \
    X(fills_not_stored, "values fetched and answered but not stored (no-store, bucket moved, no memory, a client's value came first)") \
    X(not_found,     "negative answers received (404 and the configured statuses)")         \
    X(negative_hits, "misses answered from the negative cache without a request")           \
    X(served,        "answers given to waiters from a fill (one per waiter)")              \
    X(abandoned,     "fills that completed after every waiter had gone")                    \
    X(breaker_opens, "times an origin's circuit breaker opened")

/* Per bucket of the key (the bucket's traffic to its origin; on the
 * bucket's primary, the only node that fills it): X(name, help).  Reported
 * as origin_<name> in the node's GET /v1/buckets. */
#define BC_ORIGIN_BUCKET_COUNTERS(X)                                                        \
    X(requests,  "HTTP requests sent to the origin for the bucket's keys")                  \
    X(fills,     "values fetched and stored in the bucket")                                 \
    X(not_found, "negative answers for the bucket's keys")                                  \
    X(errors,    "requests that failed (any kind), or refused while overloaded or the breaker was open")

typedef struct bc_origin_bucket_counts {
#define BC__ORIGIN_BUCKET_FIELD(name, help) uint64_t name;
    BC_ORIGIN_BUCKET_COUNTERS(BC__ORIGIN_BUCKET_FIELD)
#undef BC__ORIGIN_BUCKET_FIELD
} bc_origin_bucket_counts_t;

/* Bucket's counters into *out (zeros for a bucket out of range). */
void bc_origin_bucket_counts(bc_origin_t *o, uint32_t bucket, bc_origin_bucket_counts_t *out);

typedef struct bc_origin_stats {
#define BC__ORIGIN_STAT_FIELD(name, help) uint64_t name;
    BC_ORIGIN_STATS(BC__ORIGIN_STAT_FIELD)
#undef BC__ORIGIN_STAT_FIELD
    uint64_t errors[BC_ORIGIN_ERR_COUNT];  /* by kind; [BC_ORIGIN_OK] unused */
    uint64_t inflight;                     /* gauge: requests in flight */
    uint64_t queued;                       /* gauge: keys waiting for a slot */
    uint64_t negative_entries;             /* gauge: negative cache slots in use
                                              (expired ones until reused) */
    uint64_t breakers_open;                /* gauge: origins failing fast now */
    uint64_t latency_count;                /* requests that got an answer or failed */
    uint64_t latency_sum_us;
    uint64_t latency_buckets[16];          /* cumulative counts, le bc_origin_latency_le[i] */
} bc_origin_stats_t;

/* Upper bounds of the latency histogram, in seconds. */
extern const double bc_origin_latency_le[];
extern const unsigned bc_origin_latency_nbuckets;

/* A consistent-enough snapshot (each figure exact, taken one by one). */
void bc_origin_get_stats(bc_origin_t *o, bc_origin_stats_t *out);
/* "STAT origin_<name> <value>\r\n" lines into buf (at most len bytes);
 * returns their length.  The counters count from the last
 * bc_origin_reset_stats (the gauges are states); the JSON and Prometheus
 * forms count from the start. */
size_t bc_origin_format_stats(bc_origin_t *o, char *buf, size_t len);
/* "stats reset": the "stats" lines' counters start again from zero.
 * Thread-safe. */
void bc_origin_reset_stats(bc_origin_t *o);
/* The figures as a JSON object (owned by the caller), NULL when out of
 * memory. */
cJSON *bc_origin_stats_json(bc_origin_t *o);
/* The figures in Prometheus form (bucketcache_origin_*; errors labelled
 * by kind, latency as a histogram in seconds). */
void bc_origin_metrics(bc_origin_t *o, bc_textbuf_t *tb);

#endif
