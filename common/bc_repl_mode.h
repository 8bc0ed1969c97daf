/*
 * bc_repl_mode.h -- a group's replication mode, by name: the value of a
 * group's "replication" setting (groups/<gid>/config, bc_cluster.h), of a
 * node's --replication flag and config key, and of the CLI's
 * `group config --replication`.  What the modes do is node/repl/repl.h's
 * business; this module only names them, so that the node, the console and
 * the CLI spell them the same way.
 */
#ifndef BC_REPL_MODE_H
#define BC_REPL_MODE_H

#include "bc_status.h"

typedef enum bc_repl_mode {
    BC_REPL_ASYNC = 0,
    BC_REPL_SYNC = 1,
} bc_repl_mode_t;

/* The mode names by value, NULL-terminated (for choice lists). */
extern const char *const bc_repl_mode_names[];

/* The name of mode ("async" or "sync"); a value out of range reads as
 * "async", the default.  Static storage. */
const char *bc_repl_mode_name(bc_repl_mode_t mode);

/* Strict: exactly "async" or "sync" (s may be NULL).  *out is written only
 * on BC_OK.  Errors: BC_EINVAL. */
bc_status_t bc_repl_mode_parse(const char *s, bc_repl_mode_t *out);

#endif
