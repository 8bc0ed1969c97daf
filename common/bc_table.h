/*
 * bc_table.h -- the bucket tables (c, m, d) and their JSON form.
 *
 *   m  where each bucket's data is now
 *   d  where each bucket's data should end up (the planner's output)
 *   c  what clients route by: the owner of each bucket, and whether it is
 *      read-only (its data is being migrated away)
 *
 * Each is an array of nbuckets group ids (0 = no owner) plus the epoch it
 * was written under.  In ZooKeeper each table is one znode holding:
 *
 *   {"table":"c","epoch":12,"buckets":1024,"owners":[1,1,2,...],"readonly":[5,17]}
 *
 * ("readonly" lists bucket numbers and appears only in c).  Decoding is
 * strict: a table read from ZooKeeper that is malformed, oversized, of the
 * wrong kind or bucket count is rejected with a message, never half-used.
 */
#ifndef BC_TABLE_H
#define BC_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bc_status.h"

/* Larger than any valid table for BC_MAX_NBUCKETS (65536 x "2147483647,"),
 * and ZooKeeper's default 1 MiB znode limit keeps real tables far smaller. */
#define BC_TABLE_MAX_JSON (2u * 1024u * 1024u)
#define BC_TABLE_MAX_GID  0x7fffffffu

typedef struct bc_table {
    char name;                 /* 'c', 'm' or 'd' */
    uint64_t epoch;
    uint32_t nbuckets;
    uint32_t *owner;           /* nbuckets group ids, 0 = no owner */
    uint8_t *readonly;         /* nbuckets flags; allocated for 'c' only */
} bc_table_t;

/*
 * Allocates an all-zero table.  The arrays are owned by t and freed by
 * bc_table_free().  Errors: BC_EINVAL (name not c/m/d, nbuckets 0 or over
 * BC_MAX_NBUCKETS), BC_ENOMEM.
 */
bc_status_t bc_table_init(bc_table_t *t, char name, uint32_t nbuckets);
void bc_table_free(bc_table_t *t);
/* Deep copy into *dst (initialised here; free with bc_table_free). */
bc_status_t bc_table_copy(bc_table_t *dst, const bc_table_t *src);

/*
 * Encodes to compact JSON.  Returns a malloc'd NUL-terminated string the
 * caller frees with free(), or NULL on out of memory.
 */
char *bc_table_encode(const bc_table_t *t);

/*
 * Decodes JSON (len bytes, need not be NUL-terminated) into *out, which is
 * initialised here (free with bc_table_free) only on BC_OK.  name is the
 * table kind expected; expect_nbuckets is the cluster's N, or 0 to accept
 * any valid count.  On error, err (errlen bytes, may be NULL) receives a
 * message naming the offending field.
 * Errors: BC_EINVAL (malformed, wrong kind/count, bad entries),
 * BC_ETOOLARGE (over BC_TABLE_MAX_JSON), BC_ENOMEM.
 */
bc_status_t bc_table_decode(const char *json, size_t len, char name, uint32_t expect_nbuckets,
                            bc_table_t *out, char *err, size_t errlen);

/*
 * A planned move, by the one rule every report counts (console, CLI,
 * dashboard): bucket b's data is at group m (table m) and must go to group
 * d (table d), both real groups.  A bucket whose d is 0 has nowhere to go
 * (its planned owner is down); one whose m is 0 has no data to move (an
 * assignment, not a migration).
 */
static inline bool
bc_table_move_planned(uint32_t m, uint32_t d)
{
    return m != 0 && d != 0 && m != d;
}

#endif
