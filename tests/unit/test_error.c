/* Unit tests for error.c: every code has a distinct name. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "common_int.h"

static void
test_error_every_code_has_a_distinct_name(void **state)
{
    (void)state;
    for (int a = HQ_EIO; a <= HQ_OK; a++) {
        assert_string_not_equal(hq_strerror(a), "unknown error");
        for (int b = a + 1; b <= HQ_OK; b++)
            assert_string_not_equal(hq_strerror(a), hq_strerror(b));
    }
    assert_string_equal(hq_strerror(-1000), "unknown error");
}

static void
test_error_detail_is_formatted_and_truncated(void **state)
{
    struct hq__err e;
    char big[600];

    (void)state;
    assert_int_equal(hq__err_set(&e, HQ_ESTORE, "cannot connect to '%s'", "x"),
                     HQ_ESTORE);
    assert_string_equal(e.msg, "cannot connect to 'x'");
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    hq__err_set(&e, HQ_EINVAL, "%s", big);
    assert_int_equal(strlen(e.msg), HQ_ERRMSG_MAX - 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_every_code_has_a_distinct_name),
        cmocka_unit_test(test_error_detail_is_formatted_and_truncated),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
