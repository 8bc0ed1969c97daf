/*
 * flight.h -- single-flight: concurrent callers asking for the same key
 * share one execution of the work (groupcache's singleflight).
 *
 * The first caller of a key (the leader) runs the function; callers that
 * arrive while it runs wait for its result, each until its own deadline,
 * and receive their own copy of the value.  A caller that arrives after the
 * result was published starts a new flight: results are not cached here.
 *
 * LOCKING
 *   Calls in flight are kept in a few shards (by key hash), each a mutex
 *   and a short list.  shard->mu guards its list and every field of its
 *   calls except the leader's private work; each call has its own condition
 *   variable, waited on with shard->mu.
 */
#ifndef BC_CLIENT_FLIGHT_H
#define BC_CLIENT_FLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bc__flight bc__flight_t;

/* A flight's outcome: status is a public BC_CLIENT_* code; value is a
 * malloc'd buffer of vlen bytes plus a NUL (or NULL). */
typedef struct bc__flight_result {
    int status;
    void *value;
    size_t vlen;
    uint32_t flags;
} bc__flight_result_t;

/* The leader's work: fills *res (zeroed before); res->value becomes the
 * flight's. */
typedef void (*bc__flight_fn)(void *arg, bc__flight_result_t *res);

bc__flight_t *bc__flight_new(void);
/* No flight may be in progress. */
void bc__flight_free(bc__flight_t *f);

/*
 * Runs fn(arg) for key, or waits for the run already in progress for it.
 * *out receives the status and, on status 0, a private malloc'd copy of
 * the value (the caller frees it).  *shared (may be NULL) tells whether
 * another caller did the work.  A waiter whose deadline_ns passes first
 * gets status `timeout_status` and no value.  Returns out->status, or
 * `nomem_status` when memory ran out.
 */
int bc__flight_do(bc__flight_t *f, uint32_t hash, const void *key, size_t klen,
                  uint64_t deadline_ns, bc__flight_fn fn, void *arg, int timeout_status,
                  int nomem_status, bc__flight_result_t *out, bool *shared);

/* Flights in progress now (for tests). */
size_t bc__flight_active(bc__flight_t *f);
/* Callers in those flights now, leaders and waiters (for tests: a test's
 * work can last until every caller has joined, however late they run). */
size_t bc__flight_callers(bc__flight_t *f);

#endif
