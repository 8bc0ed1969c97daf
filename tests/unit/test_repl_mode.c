/*
 * test_repl_mode.c -- the replication mode names (common/bc_repl_mode.h):
 * every mode's name parses back to it, parsing is strict, and a value out
 * of range is named as the default.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bc_repl_mode.h"

static void
test_names_round_trip(void **state)
{
    (void)state;
    int n = 0;
    for (; bc_repl_mode_names[n] != NULL; n++) {
        bc_repl_mode_t m = (bc_repl_mode_t)99;
        assert_int_equal(bc_repl_mode_parse(bc_repl_mode_names[n], &m), BC_OK);
        assert_int_equal(m, n);
        assert_string_equal(bc_repl_mode_name(m), bc_repl_mode_names[n]);
    }
    assert_int_equal(n, 2);
    assert_string_equal(bc_repl_mode_name(BC_REPL_ASYNC), "async");
    assert_string_equal(bc_repl_mode_name(BC_REPL_SYNC), "sync");
    assert_string_equal(bc_repl_mode_name((bc_repl_mode_t)7), "async");
}

static void
test_parse_is_strict(void **state)
{
    (void)state;
    const char *bad[] = {"", "Sync", "SYNC", "sync ", " async", "asyncx", "syn", "1", "0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bc_repl_mode_t m = BC_REPL_SYNC;
        assert_int_equal(bc_repl_mode_parse(bad[i], &m), BC_EINVAL);
        assert_int_equal(m, BC_REPL_SYNC);   /* untouched */
    }
    bc_repl_mode_t m = BC_REPL_SYNC;
    assert_int_equal(bc_repl_mode_parse(NULL, &m), BC_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_round_trip),
        cmocka_unit_test(test_parse_is_strict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
