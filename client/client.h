/*
 * client.h -- what client.c (the client object's life: options, create,
 * destroy, stats, locate, error texts) offers besides the public API: a
 * client for unit tests that needs no ZooKeeper.
 *
 * DEPENDENCIES
 *   client.c sits on top: it opens ZooKeeper, starts the agent (agent.h)
 *   and tears everything down.  Nothing below it calls into client.c.
 */
#ifndef BC_CLIENT_CLIENT_H
#define BC_CLIENT_CLIENT_H

#include <stdint.h>

#include "bc_status.h"
#include "client_int.h"

/*
 * A client without ZooKeeper, routing by tables installed with
 * bc__registry_install (unit tests; no agent thread).  opts may be NULL
 * (the defaults); opts->zk_hosts and cluster may be NULL.  *out is the
 * caller's (bc_client_destroy).  Errors: BC_EINVAL, BC_ENOMEM.
 */
bc_status_t bc__client_new_detached(const bc_client_options_t *opts, uint32_t nbuckets,
                                    bc_client_t **out);

#endif
