/*
 * admin.h -- `bucketcache`'s cluster administration commands.  They talk
 * to ZooKeeper directly (common/bc_cluster.h) or to the active console's
 * HTTP API (console/api.h), found through its election znode; none goes
 * through libbucketcache.
 *
 * Each takes the global flags and its own argv (argv[0] is the command's
 * last word: "create", "config", "tables", ...), prints its result (JSON
 * with --json) or a message on stderr, and returns a BC_CLI_EXIT_* code.
 */
#ifndef BC_CLI_ADMIN_H
#define BC_CLI_ADMIN_H

#include <stdbool.h>

#include "cli.h"

/* cluster create [--buckets N] [--writer-auth-file F]... [--read-auth-file F]...:
 * the cluster's ZooKeeper layout, once; with --zk-auth-file, under digest
 * ACLs (the writers -- by default the --zk-auth-file identity -- may do
 * everything, the readers read, nobody else anything). */
int bc_cli_admin_cluster_create(bc_cli_t *cli, int argc, char **argv);
/* cluster secure [--writer-auth-file F]... [--read-auth-file F]...: puts
 * those ACLs on an existing cluster's whole tree; also how identities
 * are rotated (docs/security.md). */
int bc_cli_admin_cluster_secure(bc_cli_t *cli, int argc, char **argv);
/* group config GID [--replication async|sync] [--sync-timeout-ms N]
 * [--max-lag-mb N] [--clear]: shows or changes groups/<gid>/config. */
int bc_cli_admin_group_config(bc_cli_t *cli, int argc, char **argv);
/* "group failover GID --unclean": asks the active console for an unclean
 * failover (POST /v1/groups/failover) and prints what may be lost. */
int bc_cli_admin_group_failover(bc_cli_t *cli, int argc, char **argv);
/* tables [--per-bucket]: the c, m and d tables. */
int bc_cli_admin_tables(bc_cli_t *cli, int argc, char **argv);
/* status (nodes_view false) or groups (true): from the console. */
int bc_cli_admin_status(bc_cli_t *cli, bool nodes_view);
/* rebalance [--dry-run]: asks the console to recompute d. */
int bc_cli_admin_rebalance(bc_cli_t *cli, int argc, char **argv);
/* locate KEY: the key's bucket, owner group and primary, from ZooKeeper. */
int bc_cli_admin_locate(bc_cli_t *cli, int argc, char **argv);

#endif
