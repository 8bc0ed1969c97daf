/*
 * cli.h -- what the commands of `bucketcache` share: the global options,
 * the exit codes, and small helpers.
 *
 *   main.c        usage, the global flags, dispatch to a command
 *   admin.c/h     cluster administration: ZooKeeper and the console's API
 *   data.c/h      get, set, del...: plain libbucketcache calls
 *   migrations.c/h  `bucketcache migrations`: progress and control
 *   observe.c/h   `bucketcache top` and `hotkeys`: the console's statistics
 *   cli.c/h       this
 *
 * DEPENDENCIES
 *   main -> admin, data, migrations, observe -> cli.  The commands never call one
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
    BC_CLI_EXIT_DENIED = 8,            /* credentials missing or refused (ZooKeeper, console) */
};

/* How long an admin command waits for a ZooKeeper session. */
#define BC_CLI_ZK_CONNECT_MS 5000

/* The global flags, as main parsed them (strings borrowed from argv or the
 * environment). */
typedef struct bc_cli {
    const char *zk_hosts;              /* --zk, $BUCKETCACHE_ZK; may be NULL */
    const char *cluster;               /* --cluster, $BUCKETCACHE_CLUSTER; may be NULL */
    int json;                          /* --json: machine-readable output */
    int verbose;                       /* -v: the library logs at DEBUG */
    int session_timeout_ms;            /* ZooKeeper session */
    int timeout_ms;                    /* --timeout: each data command's deadline */
    /* Credentials (docs/security.md); never on the command line itself. */
    const char *zk_auth_file;          /* --zk-auth-file, $BUCKETCACHE_ZK_AUTH_FILE; may be NULL */
    /* TLS to the nodes (data commands; bc_client_options_t's tls_*).  Any
     * tls_* file or name turns tls on. */
    int tls;                           /* --tls, $BUCKETCACHE_TLS=1 */
    const char *tls_ca_file;           /* --tls-ca-file, $BUCKETCACHE_TLS_CA_FILE */
    const char *tls_cert_file;         /* --tls-cert-file, $BUCKETCACHE_TLS_CERT_FILE */
    const char *tls_key_file;          /* --tls-key-file, $BUCKETCACHE_TLS_KEY_FILE */
    const char *tls_server_name;       /* --tls-server-name, $BUCKETCACHE_TLS_SERVER_NAME */
    int tls_no_name_check;             /* --tls-no-name-check */
} bc_cli_t;

/* The exit code for a status of the common code (ZooKeeper, cluster). */
int bc_cli_exit_for_status(bc_status_t st);
/* bc_status_str, but a ZooKeeper refusal names what to check. */
const char *bc_cli_status_text(bc_status_t st);
/* Parses a decimal integer in lo..hi into *out; false (with a message on
 * stderr naming `what`) otherwise. */
bool bc_cli_parse_i64(const char *s, const char *what, long long lo, long long hi, long long *out);
/* Prints doc as one line of JSON on stdout (nothing when out of memory). */
void bc_cli_print_json(const cJSON *doc);
/*
 * Adds bytes p[0..n) to o as the string field `name` when they are valid
 * UTF-8 without NUL, else as `name`_base64 (standard base64): JSON output
 * is binary-safe and a value is never cut at a NUL (docs/client.md).
 */
void bc_cli_json_add_bytes(cJSON *o, const char *name, const void *p, size_t n);

/*
 * The active console's API address, found through ZooKeeper, into addr
 * (len bytes).  Returns an exit code; prints the reason on failure.
 */
int bc_cli_console_addr(const bc_cli_t *cli, char *addr, size_t len);
/*
 * method path on the console at addr, the JSON reply parsed into *doc
 * (the caller frees it; NULL on failure).  Returns an exit code; prints
 * the reason (the console's error message for a 4xx/5xx) on failure --
 * except, when quiet, that the console did not answer (a command that
 * polls says so its own way).
 */
int bc_cli_console_request(const char *addr, const char *method, const char *path, cJSON **doc,
                           bool quiet);
/*
 * Opens a ZooKeeper session for an admin command after checking --zk and
 * --cluster; on failure prints one line (hosts, what failed, exit code)
 * and returns the exit code.
 */
struct bc_zk;
int bc_cli_zk_connect(const bc_cli_t *cli, struct bc_zk **zk);

#endif
