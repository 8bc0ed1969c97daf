/*
 * cli.c -- see cli.h: what the commands of `bucketcache` share.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int
bc_cli_exit_for_status(bc_status_t st)
{
    switch (st) {
    case BC_OK: return BC_CLI_EXIT_OK;
    case BC_ENOTFOUND: return BC_CLI_EXIT_NOTFOUND;
    case BC_EEXISTS: return BC_CLI_EXIT_EXISTS;
    case BC_ETIMEOUT:
    case BC_EAGAIN: return BC_CLI_EXIT_UNAVAILABLE;
    default: return BC_CLI_EXIT_FAILED;
    }
}

/* A decimal integer in lo..hi, or a message naming the option. */
bool
bc_cli_parse_i64(const char *s, const char *what, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi) {
        fprintf(stderr, "bucketcache: %s must be an integer %lld..%lld, got \"%s\"\n", what, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

void
bc_cli_print_json(const cJSON *doc)
{
    char *text = cJSON_PrintUnformatted(doc);
    if (text != NULL) printf("%s\n", text);
    free(text);
}
