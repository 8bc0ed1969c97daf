/*
 * observe.h -- `bucketcache top` and `bucketcache hotkeys`: the busiest
 * buckets and the hottest keys, from the active console's statistics
 * (console/observe.h), as a table or --json.
 */
#ifndef BC_CLI_OBSERVE_H
#define BC_CLI_OBSERVE_H

#include "cli.h"

/* top [--by ops|bytes|misses] [--n N] [--watch] [--interval MS] */
int bc_cli_top(bc_cli_t *cli, int argc, char **argv);
/* hotkeys [--group G] [--n N] */
int bc_cli_hotkeys(bc_cli_t *cli, int argc, char **argv);

#endif
