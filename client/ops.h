/*
 * ops.h -- what the single-key operations (ops.c) lend the calls built on
 * them: a call's deadline, the retry backoff, and the plain remote get and
 * set that read-through uses.
 *
 * DEPENDENCIES
 *   mget.c and load.c build on ops.c; ops.c uses the router, the node
 *   pool, the near cache (near.h) and the agent (a refresh on a refusal),
 *   and nothing of mget.c or load.c.
 */
#ifndef BC_CLIENT_OPS_H
#define BC_CLIENT_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client_int.h"

/*
 * Backoff before retry number `attempt` (1 = the first retry): a random
 * duration in [d/2, d] where d = min(base * 2^(attempt-1), cap), in ns.
 * *rng is a xorshift64 state (never 0), advanced here.
 */
uint64_t bc__ops_backoff_ns(unsigned attempt, uint64_t base_ns, uint64_t cap_ns, uint64_t *rng);

/* xorshift64: the next pseudo-random value of a non-zero state. */
uint64_t bc__ops_rand_next(uint64_t *state);

/* One call's deadline (monotonic ns) from its timeout_ms argument (<= 0:
 * the client's timeout_ms option). */
uint64_t bc__ops_deadline(const bc_client_t *c, int timeout_ms);
/* Sleeps before retry `attempt`, never past deadline; false when the
 * deadline would pass first (then nothing is slept).  A table published
 * after the `published`-th ends the sleep early (bc__route_wait). */
bool bc__ops_backoff_sleep(bc_client_t *c, unsigned attempt, uint64_t deadline_ns,
                           uint64_t published);
/* The plain remote get used by bc_client_get and read-through; fills a
 * malloc'd value on BC_CLIENT_OK.  Near cache not consulted.  Returns a
 * BC_CLIENT_* code. */
int bc__ops_get_remote(bc_client_t *c, const void *key, size_t klen, uint32_t hash,
                       uint64_t deadline_ns, void **value, size_t *vlen, uint32_t *flags);
/* A plain remote set (read-through stores what its loader returned); it
 * drops the key's near copy.  Returns a BC_CLIENT_* code. */
int bc__ops_set_remote(bc_client_t *c, const void *key, size_t klen, uint32_t hash,
                       const void *value, size_t vlen, uint32_t flags, int64_t exptime,
                       uint64_t deadline_ns);

#endif
