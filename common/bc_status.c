/*
 * bc_status.c -- text for every bc_status_t, generated from BC_STATUS_TABLE.
 */
#include "bc_status.h"

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
