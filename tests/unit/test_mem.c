/*
 * test_mem.c -- the node's allocator policy (node/engine/mem.h): how much -L
 * touches on a machine with less memory available than the limit, and
 * that nothing is preallocated without the -L policy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/mem.h"

#define MIB ((size_t)1 << 20)

static void
test_prealloc_cap(void **state)
{
    (void)state;
    /* enough available: all of it */
    assert_int_equal(bc__mem_prealloc_cap(1024 * MIB, (uint64_t)8192 * MIB), 1024 * MIB);
    /* unknown (no /proc/meminfo): all of it */
    assert_int_equal(bc__mem_prealloc_cap(1024 * MIB, 0), 1024 * MIB);
    /* more than the machine has: nine tenths of what it has */
    assert_int_equal(bc__mem_prealloc_cap(64 * 1024 * MIB, (uint64_t)1000 * MIB),
                     (size_t)((uint64_t)1000 * MIB / 10 * 9));
    /* just over the nine tenths: capped too */
    assert_int_equal(bc__mem_prealloc_cap(950 * MIB, (uint64_t)1000 * MIB),
                     (size_t)((uint64_t)1000 * MIB / 10 * 9));
}

static void
test_no_prealloc_without_the_policy(void **state)
{
    (void)state;
    int64_t took = -1;
    /* bc_node_mem_policy(true) was never called: nothing is touched */
    assert_int_equal(bc_node_mem_prealloc(64 * MIB, &took), 0);
    assert_true(took >= 0);
    assert_int_equal(bc_node_mem_preallocated(), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prealloc_cap),
        cmocka_unit_test(test_no_prealloc_without_the_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
