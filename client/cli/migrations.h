/*
 * cli_migrations.h -- `bucketcache migrations`: bucket migration progress
 * and control, from the active console's API (console/api.h).
 *
 *   bucketcache migrations [--watch] [--interval MS] [--json]
 *   bucketcache migrations pause | resume | cancel
 */
#ifndef BC_CLI_MIGRATIONS_H
#define BC_CLI_MIGRATIONS_H

/*
 * Runs the command; argv[0] is "migrations".  zk_hosts and cluster come
 * from the global flags (may be NULL: an error is printed).  json selects
 * machine-readable output.  Returns the CLI exit code: 0 ok, 1 failed,
 * 2 usage, 4 ZooKeeper or the console unreachable.
 */
int bc__cli_migrations(const char *zk_hosts, const char *cluster, int json, int argc, char **argv);

#endif
