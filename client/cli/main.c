/*
 * main.c -- `bucketcache`, the command-line tool: the global flags, usage,
 * and dispatch to a command.
 *
 *   bucketcache [--zk HOSTS] [--cluster NAME] [--json] COMMAND [ARGS]
 *   (the global options may come anywhere, before or after the command;
 *   `help COMMAND` and `COMMAND --help` describe each command, from the
 *   table below)
 *
 *   cluster create --buckets N   create a cluster's ZooKeeper layout (once)
 *   cluster secure               put ZooKeeper ACLs on an existing cluster
 *   status                       the cluster at a glance (from the console)
 *   groups                       every group and node with its role
 *   group config GID ...         a group's replication settings
 *   group failover GID --unclean promote a backup outside the in-sync set
 *   tables [--per-bucket]        show the c, m and d tables
 *   rebalance [--dry-run]        recompute d now (or just show the plan)
 *   locate KEY                   the key's bucket, owner group and primary
 *   migrations [--watch]         bucket migration progress (migrations.c)
 *   top [--by ops|bytes|misses]  the busiest buckets (observe.c)
 *   hotkeys                      the hottest keys, per group (observe.c)
 *
 *   get KEY...                   read values (through libbucketcache)
 *   set KEY [VALUE|-]            store a value (argument, stdin or --file)
 *   del KEY...                   delete keys
 *   touch --ttl SECS KEY...      set keys' expiry time
 *   incr|decr KEY [DELTA]        add to / subtract from a decimal value
 *
 * --zk and --cluster default to $BUCKETCACHE_ZK and $BUCKETCACHE_CLUSTER.
 * Credentials (docs/security.md) never go on the command line: the admin
 * token comes from --auth-token-file or $BUCKETCACHE_TOKEN, the ZooKeeper
 * identity from --zk-auth-file or $BUCKETCACHE_ZK_AUTH_FILE.
 * The cluster commands (admin.c) talk to ZooKeeper and the console; the
 * data commands (data.c) are plain libbucketcache calls, routed to each
 * key's primary with the library's retries.  Exit codes (stable, for
 * scripts; cli.h):
 *   0 success, 1 the operation failed, 2 usage error,
 *   3 not found (no such cluster, key or bucket owner), 4 ZooKeeper
 *   unreachable, 5 already exists (cluster; add of an existing key),
 *   6 timed out (no answer from the key's owner within --timeout),
 *   7 the key's bucket has no owner (its group is down),
 *   8 credentials missing or refused (ZooKeeper NOAUTH, console 401/403).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zookeeper/zookeeper.h>

#include "admin.h"
#include "bc_auth.h"
#include "bc_config.h"
#include "bc_hash.h"
#include "bc_http_client.h"
#include "bc_log.h"
#include "bc_zk.h"
#include "cli.h"
#include "data.h"
#include "migrations.h"
#include "observe.h"

/* One command: its name, the words of its usage line after the name, what
 * it does, and how it runs.  argv[0] of run is the command's last word. */
typedef struct cli_command {
    const char *name;
    const char *args;
    const char *help;
    int (*run)(bc_cli_t *cli, int argc, char **argv);
    int words;                    /* 2 for "cluster create", "group config" */
} cli_command_t;

static int run_status(bc_cli_t *cli, int argc, char **argv);
static int run_migrations(bc_cli_t *cli, int argc, char **argv);
static int run_groups(bc_cli_t *cli, int argc, char **argv);

static const cli_command_t commands[] = {
    {"cluster create", "--buckets N [--writer-auth-file F]... [--read-auth-file F]...",
     "Creates a cluster's ZooKeeper layout, once.  N buckets (default 1024) is fixed forever.\n"
     "With --zk-auth-file, under ZooKeeper ACLs: the writers (default: the --zk-auth-file\n"
     "identity) may change it, the readers (clients that only route) read it, nobody else\n"
     "anything (docs/security.md).", bc_cli_admin_cluster_create, 2},
    {"cluster secure", "[--writer-auth-file F]... [--read-auth-file F]...",
     "Puts (or rotates) those ZooKeeper ACLs on an existing cluster's whole tree, as the\n"
     "--zk-auth-file identity, which must stay a writer (docs/security.md).",
     bc_cli_admin_cluster_secure, 2},
    {"status", "",
     "The cluster at a glance, from the active console: each group's state, memory used and\n"
     "limit, requests per second and hit ratio over the last minute, buckets, primary; then the\n"
     "warnings the dashboard shows (group down, unowned buckets, no backup, lagging backup,\n"
     "stuck migration, no standby console).", run_status, 1},
    {"groups", "", "Every group and node with its role, memory and replication state.",
     run_groups, 1},
    {"group config",
     "GID [--replication async|sync] [--sync-timeout-ms N] [--max-lag-mb N] [--min-in-sync N] "
     "[--clear]",
     "Shows or changes a group's replication settings.  --min-in-sync N: the backups in sync a\n"
     "write needs (default 1 in sync mode, 0 in async mode; 0 = degrade to the primary alone).",
     bc_cli_admin_group_config, 2},
    {"group failover", "GID --unclean",
     "Promotes the best live node of a group whose primary is gone with no backup of its\n"
     "in-sync set alive: acknowledged writes may be lost, and it says how many bytes of stream\n"
     "the promoted node is behind.", bc_cli_admin_group_failover, 2},
    {"tables", "[--per-bucket]",
     "The c (clients), m (data now) and d (target) tables, as runs or one line per bucket.",
     bc_cli_admin_tables, 1},
    {"rebalance", "[--dry-run]",
     "Recomputes where buckets belong (--dry-run: shows the plan and the bytes it would move).",
     bc_cli_admin_rebalance, 1},
    {"locate", "KEY", "Which bucket, group and primary node serve KEY.", bc_cli_admin_locate, 1},
    {"migrations", "[--watch] [--interval MS] | pause | resume | cancel",
     "Bucket migration progress; pause, resume or cancel the moves.", run_migrations, 1},
    {"top", "[--by ops|bytes|misses] [--n N] [--watch] [--interval MS] [--count K]",
     "The busiest buckets: by requests/s or misses/s over about the last minute, or by bytes\n"
     "held.  --watch repeats every --interval ms (default 2000), --count times at most.",
     bc_cli_top, 1},
    {"hotkeys", "[--group G] [--n N]",
     "The hottest keys lately, sampled by the nodes and merged per group by the console;\n"
     "a key that is not valid UTF-8 shows as base64 (key_base64 with --json).", bc_cli_hotkeys, 1},
    {"get", "KEY...",
     "Prints the value of KEY (several keys: KEY<TAB>VALUE lines).  With --json a value that\n"
     "is not valid UTF-8 or holds a NUL byte comes as \"value_base64\" instead of \"value\".",
     bc_cli_data_get, 1},
    {"gets", "KEY", "Prints CAS<TAB>VALUE (for set --cas); --json as get.", bc_cli_data_gets, 1},
    {"set", "KEY [VALUE|-] [--file F] [--ttl SECS] [--flags N] [--add|--replace|--append|--prepend] [--cas N]",
     "Stores VALUE (from stdin when VALUE is - or missing; --cas N: only if unchanged since gets\n"
     "printed N).", bc_cli_data_set, 1},
    {"del", "KEY...", "Deletes keys (also: delete).", bc_cli_data_del, 1},
    {"touch", "--ttl SECS KEY...", "Sets keys' expiry (0 = never).", bc_cli_data_touch, 1},
    {"incr", "KEY [DELTA]", "Adds DELTA (default 1) to a decimal value, prints the result.",
     bc_cli_data_arith, 1},
    {"decr", "KEY [DELTA]", "Subtracts DELTA (default 1), stopping at 0; prints the result.",
     bc_cli_data_arith, 1},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char global_options[] =
    "global options (before or after the command):\n"
    "  --zk HOSTS       ZooKeeper hosts, host:port[,host:port...] (env BUCKETCACHE_ZK)\n"
    "  --cluster NAME   cluster name (env BUCKETCACHE_CLUSTER)\n"
    "  --timeout MS     deadline of each data command (default 2000)\n"
    "  --auth-token-file FILE  the admin token for the console and nodes (env\n"
    "                   BUCKETCACHE_TOKEN holds the token itself)\n"
    "  --zk-auth-file FILE     ZooKeeper credentials, user:password (env\n"
    "                   BUCKETCACHE_ZK_AUTH_FILE)\n"
    "  --tls            data commands speak TLS to the nodes (nodes run with -Z;\n"
    "                   env BUCKETCACHE_TLS=1); implied by the options below\n"
    "  --tls-ca-file FILE      CAs of the nodes' certificates (default: the\n"
    "                   system's; env BUCKETCACHE_TLS_CA_FILE); with it, `status`\n"
    "                   asks the nodes' admin ports over HTTPS (-Z in a cluster)\n"
    "  --tls-cert-file FILE, --tls-key-file FILE  a client certificate, for nodes\n"
    "                   that ask for one (env BUCKETCACHE_TLS_CERT_FILE, _KEY_FILE)\n"
    "  --tls-server-name NAME  the name the nodes' certificates carry (default:\n"
    "                   each node's address; env BUCKETCACHE_TLS_SERVER_NAME)\n"
    "  --tls-no-name-check     check the certificate chain only, not its name\n"
    "  --json           machine-readable output (binary-safe: see get)\n"
    "  -v, --verbose    log what the library and the ZooKeeper client do\n"
    "  -h, --help       help (after a command: that command's)\n"
    "  --version        the version\n"
    "  --               the end of options: what follows is the command's, as it is\n"
    "                   (set KEY -- -value)\n";

static int
run_status(bc_cli_t *cli, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "bucketcache: status: unexpected \"%s\"\n", argv[1]);
        return BC_CLI_EXIT_USAGE;
    }
    return bc_cli_admin_status(cli, false);
}

static int
run_migrations(bc_cli_t *cli, int argc, char **argv)
{
    return bc_cli_migrations(cli, argc, argv);
}

static int
run_groups(bc_cli_t *cli, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "bucketcache: groups: unexpected \"%s\"\n", argv[1]);
        return BC_CLI_EXIT_USAGE;
    }
    return bc_cli_admin_status(cli, true);
}

static void
main_usage(FILE *out)
{
    fprintf(out, "usage: bucketcache [OPTIONS] COMMAND [ARGS] [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char left[40];
        snprintf(left, sizeof(left), "%s %s", commands[i].name, commands[i].args);
        if (strlen(commands[i].name) + 1 + strlen(commands[i].args) < sizeof(left) - 1 &&
            strlen(left) <= 28) {
            fprintf(out, "  %-28s ", left);
        } else {
            fprintf(out, "  %-28s ", commands[i].name);
        }
        const char *nl = strchr(commands[i].help, '\n');
        const char *dot = strchr(commands[i].help, '.');
        int len = (int)((dot != NULL && (nl == NULL || dot < nl)) ? dot - commands[i].help
                        : nl != NULL ? nl - commands[i].help : (long)strlen(commands[i].help));
        fprintf(out, "%.*s\n", len, commands[i].help);
    }
    fprintf(out, "\n%s\n"
                 "`bucketcache help COMMAND` or `bucketcache COMMAND --help` tells more.\n"
                 "exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 4 ZooKeeper or console\n"
                 "            unreachable, 5 exists, 6 timed out, 7 bucket has no owner (group down),\n"
                 "            8 credentials missing or refused\n",
            global_options);
}

static void
command_usage(FILE *out, const cli_command_t *c)
{
    fprintf(out, "usage: bucketcache %s%s%s\n\n%s\n\n%s", c->name, c->args[0] ? " " : "", c->args,
            c->help, global_options);
}

/* The command named by args[0] (and args[1] for two-word ones), or NULL. */
static const cli_command_t *
find_command(int argc, char **args)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const cli_command_t *c = &commands[i];
        if (c->words == 2) {
            size_t n = strcspn(c->name, " ");
            if (argc >= 2 && strlen(args[0]) == n && strncmp(args[0], c->name, n) == 0 &&
                strcmp(args[1], c->name + n + 1) == 0) {
                return c;
            }
        } else if (strcmp(args[0], c->name) == 0) {
            return c;
        }
    }
    if (strcmp(args[0], "delete") == 0) return find_command(1, (char *[]){"del"});
    return NULL;
}

/* A global option that takes a value: *value gets it (from "--opt=V" or
 * the next argument, consumed).  Returns false when it is missing. */
static bool
option_value(int argc, char **argv, int *i, const char *eq, const char **value)
{
    if (eq != NULL) {
        *value = eq + 1;
        return true;
    }
    if (*i + 1 >= argc) return false;
    *value = argv[++*i];
    return true;
}

int
main(int argc, char **argv)
{
    bc_cli_t cli = {
        .zk_hosts = getenv("BUCKETCACHE_ZK"),
        .cluster = getenv("BUCKETCACHE_CLUSTER"),
        .session_timeout_ms = 10000,
        .timeout_ms = 2000,
        .zk_auth_file = getenv("BUCKETCACHE_ZK_AUTH_FILE"),
        .tls_ca_file = getenv("BUCKETCACHE_TLS_CA_FILE"),
        .tls_cert_file = getenv("BUCKETCACHE_TLS_CERT_FILE"),
        .tls_key_file = getenv("BUCKETCACHE_TLS_KEY_FILE"),
        .tls_server_name = getenv("BUCKETCACHE_TLS_SERVER_NAME"),
    };
    const char *tls_env = getenv("BUCKETCACHE_TLS");
    if (tls_env != NULL && strcmp(tls_env, "1") == 0) cli.tls = 1;
    const char *token_file = NULL;
    bool help = false, version = false;
    int nargs = 0;
    char **args = calloc((size_t)argc + 1, sizeof(*args));
    if (args == NULL) return BC_CLI_EXIT_FAILED;
    bc_log_set_component("cli");
    bc_log_set_level(BC_LOG_WARN);

    /*
     * Global options are taken from anywhere on the line (as git and
     * kubectl do), up to "--"; everything else, in order, is the command
     * and its own arguments.  An option before the command that is not a
     * global one is a usage error naming it; after the command, the
     * command judges it.
     */
    bool ended = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = NULL, *value = NULL;
        if (ended || a[0] != '-' || a[1] == '\0') {
            args[nargs++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            /* Kept for the command, whose own parser ends its options there
             * too (set KEY -- -value). */
            ended = true;
            args[nargs++] = argv[i];
            continue;
        }
        char name[32];
        eq = strchr(a, '=');
        snprintf(name, sizeof(name), "%.*s", eq != NULL ? (int)(eq - a) : (int)strlen(a), a);
        if (strcmp(name, "--zk") == 0 || strcmp(name, "--cluster") == 0 ||
            strcmp(name, "--timeout") == 0 || strcmp(name, "--auth-token-file") == 0 ||
            strcmp(name, "--zk-auth-file") == 0 || strcmp(name, "--tls-ca-file") == 0 ||
            strcmp(name, "--tls-cert-file") == 0 || strcmp(name, "--tls-key-file") == 0 ||
            strcmp(name, "--tls-server-name") == 0) {
            if (!option_value(argc, argv, &i, eq, &value) || value[0] == '\0') {
                fprintf(stderr, "bucketcache: %s needs a value\n", name);
                free(args);
                return BC_CLI_EXIT_USAGE;
            }
            if (strcmp(name, "--zk") == 0) {
                cli.zk_hosts = value;
            } else if (strcmp(name, "--cluster") == 0) {
                cli.cluster = value;
            } else if (strcmp(name, "--auth-token-file") == 0) {
                token_file = value;
            } else if (strcmp(name, "--zk-auth-file") == 0) {
                cli.zk_auth_file = value;
            } else if (strcmp(name, "--tls-ca-file") == 0) {
                cli.tls_ca_file = value;
            } else if (strcmp(name, "--tls-cert-file") == 0) {
                cli.tls_cert_file = value;
            } else if (strcmp(name, "--tls-key-file") == 0) {
                cli.tls_key_file = value;
            } else if (strcmp(name, "--tls-server-name") == 0) {
                cli.tls_server_name = value;
            } else {
                long long t;
                if (!bc_cli_parse_i64(value, "--timeout", 1, 3600000, &t)) {
                    free(args);
                    return BC_CLI_EXIT_USAGE;
                }
                cli.timeout_ms = (int)t;
            }
        } else if (eq == NULL && strcmp(a, "--tls") == 0) {
            cli.tls = 1;
        } else if (eq == NULL && strcmp(a, "--tls-no-name-check") == 0) {
            cli.tls_no_name_check = 1;
        } else if (eq == NULL && strcmp(a, "--json") == 0) {
            cli.json = 1;
        } else if (eq == NULL && (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0)) {
            bc_log_set_level(BC_LOG_DEBUG);
            cli.verbose = 1;
        } else if (eq == NULL && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            help = true;
        } else if (eq == NULL && strcmp(a, "--version") == 0) {
            version = true;
        } else if (nargs == 0) {
            fprintf(stderr, "bucketcache: unknown option \"%s\" before the command (global options: "
                            "--zk, --cluster, --timeout, --auth-token-file, --zk-auth-file, "
                            "--json, -v, --help, --version)\n", a);
            free(args);
            return BC_CLI_EXIT_USAGE;
        } else {
            args[nargs++] = argv[i];   /* the command's own option */
        }
    }
    /* The ZooKeeper client's own log is for -v only: without it a wrong
     * address is one line of ours, not the library's retries. */
    if (!cli.verbose) {
        FILE *devnull = fopen("/dev/null", "w");
        if (devnull != NULL) zoo_set_log_stream(devnull);
    }
    /* ---- credentials (docs/security.md) ---- */
    bc_auth_t *auth = NULL;
    char err[BC_ERRBUF_LEN];
    const char *token_env = getenv("BUCKETCACHE_TOKEN");
    if (cli.zk_auth_file != NULL && cli.zk_auth_file[0] == '\0') cli.zk_auth_file = NULL;
    if (token_file != NULL) {
        if (bc_auth_open(token_file, &auth, err, sizeof(err)) != BC_OK) {
            fprintf(stderr, "bucketcache: --auth-token-file: %s\n", err);
            free(args);
            return BC_CLI_EXIT_USAGE;
        }
    } else if (token_env != NULL && token_env[0] != '\0') {
        if (bc_auth_from_text("$BUCKETCACHE_TOKEN", token_env, &auth, err, sizeof(err)) != BC_OK) {
            fprintf(stderr, "bucketcache: %s\n", err);
            free(args);
            return BC_CLI_EXIT_USAGE;
        }
    }
    bc_http_client_set_auth(auth);
    if (bc_zk_use_auth_file(cli.zk_auth_file, err, sizeof(err)) != BC_OK) {
        fprintf(stderr, "bucketcache: --zk-auth-file: %s\n", err);
        bc_auth_free(auth);
        free(args);
        return BC_CLI_EXIT_USAGE;
    }
    int rc;
    const cli_command_t *c = nargs > 0 ? find_command(nargs, args) : NULL;
    if (version) {
        printf("bucketcache %s\n", BC_VERSION);
        rc = BC_CLI_EXIT_OK;
    } else if (nargs > 0 && strcmp(args[0], "help") == 0) {
        const cli_command_t *h = nargs > 1 ? find_command(nargs - 1, args + 1) : NULL;
        if (nargs > 1 && h == NULL) {
            fprintf(stderr, "bucketcache: help: unknown command \"%s\"\n", args[1]);
            main_usage(stderr);
            rc = BC_CLI_EXIT_USAGE;
        } else {
            if (h != NULL) command_usage(stdout, h);
            else main_usage(stdout);
            rc = BC_CLI_EXIT_OK;
        }
    } else if (help) {
        if (c != NULL) command_usage(stdout, c);
        else main_usage(stdout);
        rc = BC_CLI_EXIT_OK;
    } else if (nargs == 0) {
        main_usage(stderr);
        rc = BC_CLI_EXIT_USAGE;
    } else if (c == NULL) {
        fprintf(stderr, "bucketcache: unknown command \"%s\" (bucketcache help lists them)\n",
                args[0]);
        rc = BC_CLI_EXIT_USAGE;
    } else {
        rc = c->run(&cli, nargs - (c->words - 1), args + (c->words - 1));
    }
    bc_http_client_set_auth(NULL);
    bc_auth_free(auth);
    free(args);
    return rc;
}
