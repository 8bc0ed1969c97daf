/*
 * test_mem.c -- the node's memory helpers (node/engine/mem.h): how much -L
 * touches on a machine with less memory available than the limit, and
 * that a prefault touches exactly the range it is given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <sys/mman.h>

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
test_prefault_touches_the_range(void **state)
{
    (void)state;
    assert_int_equal(bc_node_mem_preallocated(), 0);
    size_t bytes = 3 * MIB + 4096;
    char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    int64_t took = -1;
    assert_int_equal(bc_node_mem_prefault(p, bytes, &took), bytes);
    assert_true(took >= 0);
    assert_int_equal(bc_node_mem_preallocated(), bytes);
    /* every page is resident now */
    size_t pages = bytes / 4096;
    unsigned char *vec = calloc(pages, 1);
    assert_non_null(vec);
    assert_int_equal(mincore(p, bytes, vec), 0);
    for (size_t i = 0; i < pages; i++) assert_true(vec[i] & 1);
    free(vec);
    munmap(p, bytes);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prealloc_cap),
        cmocka_unit_test(test_prefault_touches_the_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
