/*
 * data.h -- `bucketcache`'s data commands: each is plain libbucketcache
 * calls (include/bucketcache.h), routed to every key's primary with the
 * library's retries, within --timeout.
 *
 * Each takes the global flags and its own argv (argv[0] is the command),
 * checks the keys before connecting, prints the result (JSON with --json)
 * or a message per failed key on stderr, and returns a BC_CLI_EXIT_* code
 * (over several keys, the worst of theirs; a missing key counts least).
 */
#ifndef BC_CLI_DATA_H
#define BC_CLI_DATA_H

#include "cli.h"

/* get KEY...: one value raw, several as KEY<TAB>VALUE lines. */
int bc_cli_data_get(bc_cli_t *cli, int argc, char **argv);
/* gets KEY: CAS<TAB>VALUE, for set --cas. */
int bc_cli_data_gets(bc_cli_t *cli, int argc, char **argv);
/* set KEY [VALUE|-] [--file F] [--ttl SECS] [--flags N]
 * [--add|--replace|--append|--prepend|--cas N]: the value from the
 * argument, --file or stdin. */
int bc_cli_data_set(bc_cli_t *cli, int argc, char **argv);
/* del KEY... */
int bc_cli_data_del(bc_cli_t *cli, int argc, char **argv);
/* touch --ttl SECS KEY... */
int bc_cli_data_touch(bc_cli_t *cli, int argc, char **argv);
/* incr|decr KEY [DELTA] (argv[0] says which): prints the new value. */
int bc_cli_data_arith(bc_cli_t *cli, int argc, char **argv);

#endif
