/*
 * agent.h -- the client's background thread, which follows the cluster in
 * ZooKeeper (agent.c's header comment has what it reads and when), and
 * the one door through which a call asks it for a fresher table.
 *
 * DEPENDENCIES
 *   client.c starts and stops the agent; ops.c and mget.c ask it for a
 *   refresh when a node refuses or fails.  The agent itself uses only
 *   what lies below it: the registry (registry.h), which turns what it
 *   read into the routing snapshot, and the router (route.h).  It calls
 *   nothing in client.c, ops.c or mget.c.
 */
#ifndef BC_CLIENT_AGENT_H
#define BC_CLIENT_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"
#include "bc_zk.h"
#include "client_int.h"

/* Reads tables/c and the owners' primary records and installs them
 * (bc__registry_install); arms watches when `watch`.  err receives a
 * message.  Errors: ZooKeeper's, BC_EINVAL (malformed table/record),
 * BC_ENOMEM. */
bc_status_t bc__agent_load(bc_client_t *c, bool watch, char *err, size_t errlen);
/* Starts the thread (c->zk must be open).  Errors: BC_ENOMEM. */
bc_status_t bc__agent_start(bc_client_t *c);
/* Stops and joins the thread; a no-op when it was never started. */
void bc__agent_stop(bc_client_t *c);
/* The ZooKeeper session callback (wakes the agent); ctx is the client. */
void bc__agent_session(bc_zk_t *zk, bc_zk_event_t ev, void *ctx);

/* Asks for a table reload, at least at min_epoch when a node named one
 * (0: any newer table).  Rate-limited by the agent; never blocks on I/O.
 * With a refresh hook set, the hook is called instead. */
void bc__agent_request_refresh(bc_client_t *c, uint64_t min_epoch);
/* Unit tests: fn (with ctx) stands in for the agent on refresh requests
 * of a detached client.  fn NULL: back to the agent. */
void bc__agent_set_refresh_hook(bc_client_t *c, bc__refresh_hook_fn fn, void *ctx);

#endif
