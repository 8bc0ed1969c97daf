/*
 * registry.h -- the client's nodes by address, and turning a table (owner
 * and read-only flag per bucket, the owners' primary addresses) into the
 * routing snapshot calls use.
 *
 * HOW
 *   The registry holds one reference on every node a snapshot may name,
 *   keyed by address, so that a new table whose primaries did not change
 *   reuses the same nodes and their open connections.  Installing builds a
 *   snapshot over the registry's nodes and publishes it (route.h) unless it
 *   routes exactly like the current one; nodes the new snapshot no longer
 *   names leave the registry (they close once the last call using them is
 *   done).  c->build_mu serialises installers: the agent thread, or a unit
 *   test driving a detached client, never both.
 *
 * DEPENDENCIES
 *   Used by the agent (agent.h) and by unit tests; uses the router and the
 *   node pool only.
 */
#ifndef BC_CLIENT_REGISTRY_H
#define BC_CLIENT_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"
#include "client_int.h"

/*
 * Builds a snapshot from a c table (owner and readonly arrays of the
 * client's nbuckets; readonly may be NULL) and the primaries' data
 * addresses of `ngroups` groups (gids[i] -> addrs[i], NULL or "" when
 * unknown), reusing the nodes of known addresses, and publishes it unless
 * it routes exactly like the current one.  The arrays are borrowed.
 * Errors: BC_ENOMEM (nothing is published).
 */
bc_status_t bc__registry_install(bc_client_t *c, uint64_t epoch, const uint32_t *owner,
                                 const uint8_t *readonly, size_t ngroups, const uint32_t *gids,
                                 const char *const *addrs);
/* Drops every node reference the registry holds (client teardown). */
void bc__registry_free(bc_client_t *c);

#endif
