/*
 * cli.h -- what the commands of `bucketcache` share: the global options,
 * the exit codes, and small helpers.
 *
 *   main.c        usage, the global flags, dispatch to a command
 *   admin.c/h     cluster administration: ZooKeeper and the console's API
 *   data.c/h      get, set, del...: plain libbucketcache calls
 *   migrations.c/h  `bucketcache migrations`: progress and control
 *   cli.c/h       this
 *
 * DEPENDENCIES
 *   main -> admin, data, migrations -> cli.  The commands never call one
 *   another; cli.c calls none of them.
 */
#ifndef BC_CLI_H
#define BC_CLI_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "bc_status.h"

/* Exit codes, stable for scripts. */
enum bc_cli_exit {
    BC_CLI_EXIT_OK = 0,
    BC_CLI_EXIT_FAILED = 1,            /* the operation failed */
    BC_CLI_EXIT_USAGE = 2,             /* usage error */
    BC_CLI_EXIT_NOTFOUND = 3,          /* no such cluster, key or bucket owner */
    BC_CLI_EXIT_UNAVAILABLE = 4,       /* ZooKeeper (or the console) unreachable */
    BC_CLI_EXIT_EXISTS = 5,            /* cluster exists; add of an existing key */
    BC_CLI_EXIT_TIMEOUT = 6,           /* no answer from the key's owner within --timeout */
    BC_CLI_EXIT_NO_OWNER = 7,          /* the key's bucket has no owner (its group is down) */
};

/* The global flags, as main parsed them (strings borrowed from argv or the
 * environment). */
typedef struct bc_cli {
    const char *zk_hosts;              /* --zk, $BUCKETCACHE_ZK; may be NULL */
    const char *cluster;               /* --cluster, $BUCKETCACHE_CLUSTER; may be NULL */
    int json;                          /* --json: machine-readable output */
    int verbose;                       /* -v: the library logs at DEBUG */
    int session_timeout_ms;            /* ZooKeeper session */
    int timeout_ms;                    /* --timeout: each data command's deadline */
} bc_cli_t;

/* The exit code for a status of the common code (ZooKeeper, cluster). */
int bc_cli_exit_for_status(bc_status_t st);
/* Parses a decimal integer in lo..hi into *out; false (with a message on
 * stderr naming `what`) otherwise. */
bool bc_cli_parse_i64(const char *s, const char *what, long long lo, long long hi, long long *out);
/* Prints doc as one line of JSON on stdout (nothing when out of memory). */
void bc_cli_print_json(const cJSON *doc);

#endif
