/*
 * origin_int.h -- what the files of node/origin share and nobody else
 * sees: the origin, its fills and waiters, its clients.
 *
 *   origin.c         fills table (single-flight), queue, negative cache,
 *                    breakers, clients and their mailboxes, fetch/cancel/
 *                    deliver, and finishing a fill (the fan-out)
 *   fetch.c          the origin thread: libcurl multi, one request per
 *                    running fill, reading the answer, storing the value
 *   origin_config.c  defaults, --origin, the config file's section
 *   origin_stats.c   stats lines, JSON, Prometheus
 *   origin_http.c    the admin port's waits (origin_http.h)
 *
 * LOCKING RULE: o->lock guards every field marked (lock) below: the fills
 * table and queue, each fill's waiter list and state, the negative cache,
 * every breaker, the client list and each client's mailbox.  It is never
 * held while calling libcurl or a completion, nor while storing into the
 * cache; notify functions run under it (they only signal).  One cache
 * lookup runs under it (bc_origin_fetch, before a new fill): a shard lock
 * then nests inside it, and nothing takes the two the other way round
 * (the cache's observers never reach this module).  Fields
 * marked (thread) belong to the origin thread alone; (client) to the
 * client's thread alone.  Counters are atomics, written by any thread.
 */
#ifndef BC_ORIGIN_INT_H
#define BC_ORIGIN_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "bc_hash.h"
#include "origin/freshness.h"
#include "origin/origin.h"

#define LATENCY_BUCKETS 14u

typedef enum breaker_state {
    BREAKER_CLOSED,            /* requests go out; failures in a row are counted */
    BREAKER_OPEN,              /* fail fast until open_until_ms */
    BREAKER_HALF_OPEN,         /* one probe request decides */
} breaker_state_t;

/* One configured template (a prefix's, or the default) and its breaker. */
typedef struct origin_entry {
    char prefix[BC_KEY_MAX_LEN + 1];
    size_t nprefix;                /* 0: the default URL */
    char url[BC_ORIGIN_URL_MAX];
    breaker_state_t bstate;        /* (lock) */
    uint32_t failures;             /* (lock) in a row */
    int64_t open_until_ms;         /* (lock) */
    bool probing;                  /* (lock) the half-open probe is in flight */
} origin_entry_t;

typedef enum wait_state {
    WAIT_PENDING,                  /* on its fill's waiter list */
    WAIT_POSTED,                   /* result in its client's mailbox */
    WAIT_DELIVERING,               /* taken by the client's thread */
} wait_state_t;

struct bc_origin_wait {
    bc_origin_wait_t *prev, *next; /* (lock) the fill's list or the mailbox */
    bc_origin_client_t *client;
    struct fill *fill;             /* (lock) while PENDING */
    wait_state_t state;            /* (lock) */
    bc_origin_done_fn done;        /* (client) NULL once cancelled while delivering */
    void *arg;
    uint32_t tag;
    bc_origin_result_t res;        /* set when posted */
};

typedef enum fill_state {
    FILL_QUEUED,
    FILL_RUNNING,
} fill_state_t;

typedef struct fill {
    bc_origin_t *o;
    struct fill *hnext;            /* (lock) table chain */
    struct fill *qnext;            /* (lock) queue */
    struct fill *rprev, *rnext;    /* (thread) running list */
    origin_entry_t *entry;
    char key[BC_KEY_MAX_LEN];
    uint8_t nkey;
    uint32_t hash;
    fill_state_t state;            /* (lock) */
    bool probe;                    /* (lock) its breaker's half-open probe */
    bool refused_breaker;          /* (lock) taken off the queue: its breaker opened */
    int64_t queued_ms;
    bc_origin_wait_t *whead, *wtail; /* (lock) */
    uint32_t nwaiters;             /* (lock) */

    /* (thread) the request */
    CURL *easy;
    int64_t started_us;
    char *body;                    /* a 2xx answer's body so far */
    size_t blen, bcap;
    size_t discarded;              /* another status's body, skipped */
    bc_origin_fresh_t fresh;
    uint32_t flags;
    bool bad_header;               /* malformed line or flags value: abort */
    bool too_large;
    char errbuf[CURL_ERROR_SIZE];
    char url[BC_ORIGIN_URL_BUF];
} fill_t;

struct bc_origin_client {
    bc_origin_t *o;
    bc_origin_client_t *prev, *next;   /* (lock) o->clients */
    bc_origin_wait_t *mb_head, *mb_tail; /* (lock) posted results */
    bool notified;                     /* (lock) a notify is outstanding */
    void (*notify)(void *arg);
    void *notify_arg;
    bc_el_t *el;                       /* an event-loop client's */
    bc_el_io_t io;
    int efd;                           /* its eventfd, -1 otherwise */
};

/* A remembered negative answer. */
typedef struct neg_entry {
    uint32_t next;                 /* chain: index + 1, 0 = end */
    uint32_t hash;
    int64_t expires_ms;            /* 0: slot unused */
    uint8_t nkey;
    char key[BC_KEY_MAX_LEN];
} neg_entry_t;

#define BC__ORIGIN_ATOMIC_FIELD(name, help) _Atomic uint64_t name;

struct bc_origin {
    bc_origin_config_t cfg;
    bc_cache_t *cache;             /* borrowed */
    bc_node_cluster_t *cluster;    /* borrowed; NULL: standalone, every bucket ours */
    size_t max_body;               /* the cache's max item size */
    origin_entry_t *entries;       /* the prefixes, then the default (if any) */
    uint32_t nentries;

    pthread_mutex_t lock;
    bc_origin_stats_t reset_base;  /* (lock) the counters at "stats reset" */
    fill_t **table;                /* (lock) by key hash */
    uint32_t table_mask;
    uint32_t nfills;               /* (lock) queued + running */
    fill_t *q_head, *q_tail;       /* (lock) */
    uint32_t nqueued, nrunning;    /* (lock) */
    neg_entry_t *neg;              /* (lock) negative_max slots, reused in turn */
    uint32_t *neg_heads;           /* (lock) chains by hash: index + 1 */
    uint32_t neg_mask, neg_next, neg_count;
    bc_origin_client_t *clients;   /* (lock) */
    bool stopping;                 /* (lock) */

    pthread_t thread;
    bool started;
    CURLM *multi;                  /* (thread) but curl_multi_wakeup from any */
    fill_t *running;               /* (thread) */
    CURL **pool;                   /* (thread) idle easy handles */
    uint32_t npool;

    uint32_t nbuckets;             /* the cache's */
    struct origin_bucket_ctr *per_bucket;  /* nbuckets (32 bytes each) */

    struct {
        BC_ORIGIN_STATS(BC__ORIGIN_ATOMIC_FIELD)
        _Atomic uint64_t errors[BC_ORIGIN_ERR_COUNT];
        _Atomic uint64_t latency_count, latency_sum_us;
        _Atomic uint64_t latency[LATENCY_BUCKETS + 1];   /* per bucket, last = +Inf */
    } st;
};

#define ORIGIN_COUNT(o, field) atomic_fetch_add_explicit(&(o)->st.field, 1, memory_order_relaxed)

/* One bucket's counters (BC_ORIGIN_BUCKET_COUNTERS), shared by every
 * thread that counts: atomic adds, since fills end on the origin thread
 * and refusals on the workers -- origin traffic is rare next to gets. */
typedef struct origin_bucket_ctr {
#define BC__ORIGIN_BUCKET_ATOMIC(name, help) _Atomic uint64_t name;
    BC_ORIGIN_BUCKET_COUNTERS(BC__ORIGIN_BUCKET_ATOMIC)
#undef BC__ORIGIN_BUCKET_ATOMIC
} origin_bucket_ctr_t;

/* Counts one event of the bucket of hash. */
#define ORIGIN_BUCKET_COUNT(o, hash, field)                                                 \
    atomic_fetch_add_explicit(&(o)->per_bucket[bc_hash_bucket((hash), (o)->nbuckets)].field, \
                              1, memory_order_relaxed)

/* ---- origin.c ---- */

/* Ends fill f (no longer queued or running here): takes it out of the
 * table, updates its breaker (failure: the origin misbehaved), remembers
 * a negative answer, and posts res to every waiter (an item reference
 * each).  res->item stays the caller's.  Takes the lock. */
void bc__origin_fill_finish(bc_origin_t *o, fill_t *f, const bc_origin_result_t *res,
                            bool failure);
/* Frees a finished fill's request state and the fill. */
void bc__origin_fill_free(fill_t *f);

/* ---- fetch.c ---- */

bc_status_t bc__origin_thread_start(bc_origin_t *o);
/* Joins the thread (o->stopping set by the caller). */
void bc__origin_thread_join(bc_origin_t *o);
/* Frees the idle easy handles. */
void bc__origin_pool_free(bc_origin_t *o);
/* Records one request's duration. */
void bc__origin_observe_latency(bc_origin_t *o, int64_t us);

#endif
