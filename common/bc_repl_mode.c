/*
 * bc_repl_mode.c -- see bc_repl_mode.h.
 */
#include "bc_repl_mode.h"

#include <stddef.h>
#include <string.h>

const char *const bc_repl_mode_names[] = {"async", "sync", NULL};

const char *
bc_repl_mode_name(bc_repl_mode_t mode)
{
    return bc_repl_mode_names[mode == BC_REPL_SYNC ? BC_REPL_SYNC : BC_REPL_ASYNC];
}

bc_status_t
bc_repl_mode_parse(const char *s, bc_repl_mode_t *out)
{
    for (int i = 0; s != NULL && bc_repl_mode_names[i] != NULL; i++) {
        if (strcmp(s, bc_repl_mode_names[i]) == 0) {
            *out = (bc_repl_mode_t)i;
            return BC_OK;
        }
    }
    return BC_EINVAL;
}
