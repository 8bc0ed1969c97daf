/*
 * bc_status.c -- text for every bc_status_t, generated from BC_STATUS_TABLE.
 */
#include "bc_status.h"

#include <stdio.h>

const char *
bc_status_str(bc_status_t status)
{
    switch (status) {
#define BC__STATUS_CASE(name, value, text) case name: return text;
    BC_STATUS_TABLE(BC__STATUS_CASE)
#undef BC__STATUS_CASE
    }
    return "unknown status";
}

bc_status_t
bc_vfail(char *err, size_t errlen, bc_status_t st, const char *fmt, va_list ap)
{
    if (err != NULL && errlen > 0) vsnprintf(err, errlen, fmt, ap);
    return st;
}

bc_status_t
bc_fail(char *err, size_t errlen, bc_status_t st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bc_vfail(err, errlen, st, fmt, ap);
    va_end(ap);
    return st;
}
