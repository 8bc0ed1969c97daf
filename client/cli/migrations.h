/*
 * migrations.h -- `bucketcache migrations`: bucket migration progress
 * and control, from the active console's API (console/api.h).
 *
 *   bucketcache migrations [--watch] [--interval MS] [--json]
 *   bucketcache migrations pause | resume | cancel
 */
#ifndef BC_CLI_MIGRATIONS_H
#define BC_CLI_MIGRATIONS_H

#include "cli.h"

/*
 * Runs the command; argv[0] is "migrations".  cli->zk_hosts and cluster
 * may be NULL (an error is printed); cli->json selects machine-readable
 * output.  Returns a BC_CLI_EXIT_* code: OK, FAILED, USAGE, or
 * UNAVAILABLE (ZooKeeper or the console unreachable).
 */
int bc_cli_migrations(const bc_cli_t *cli, int argc, char **argv);

#endif
