/*
 * json_exact.c: JSON with numbers of any size, and a member's exact text.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "json_exact_int.h"

static const struct {
    const char *body;
    const char *data; /* the compacted text of "data" */
} raw_rows[] = {
    {"{\"code\":\"a\",\"data\":{\"n\":12345678901234567890123}}",
     "{\"n\":12345678901234567890123}"},
    {"{\"data\": [1e400, -1E+400, 0.1000000000000000055511151231257827]}",
     "[1e400,-1E+400,0.1000000000000000055511151231257827]"},
    {"{\"data\"\n:\n {\"a b\" : \"x  y\\\" }\" ,\t\"c\":[ ]} }",
     "{\"a b\":\"x  y\\\" }\",\"c\":[]}"},
    {"{\"data\":1,\"data\":-0.5e-999}", "-0.5e-999"},
    {"{\"d\\u0061ta\":true,\"x\":{\"data\":2}}", "true"},
    {"{\"x\":{\"data\":2},\"da\":null}", NULL},
    {"{\"data\":\"\\u00e9\\\\\"}", "\"\\u00e9\\\\\""},
};

static void
test_json_exact_member_raw_keeps_every_byte_but_blanks(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(raw_rows) / sizeof(raw_rows[0]); i++) {
        char *out;
        size_t len;

        assert_int_equal(hq__json_member_raw(raw_rows[i].body,
                                             strlen(raw_rows[i].body), "data",
                                             &out, &len),
                         0);
        if (raw_rows[i].data == NULL) {
            assert_null(out);
            continue;
        }
        assert_non_null(out);
        assert_string_equal(out, raw_rows[i].data);
        assert_int_equal(len, strlen(raw_rows[i].data));
        free(out);
    }
}

static void
test_json_exact_member_raw_refuses_a_non_object(void **state)
{
    char *out;
    size_t len;

    (void)state;
    assert_int_equal(hq__json_member_raw("[1]", 3, "data", &out, &len), -1);
    assert_int_equal(hq__json_member_raw("{\"data\":", 8, "data", &out, &len),
                     -1);
    assert_null(out);
}

static void
test_json_exact_load_reads_numbers_jansson_refuses(void **state)
{
    const char *body = "{\"a\":123456789012345678901234567890,"
                       "\"b\":-99999999999999999999,\"c\":1e400,\"d\":7,"
                       "\"s\":\"99999999999999999999999\"}";
    json_error_t err;
    json_t *root;

    (void)state;
    assert_null(json_loadb(body, strlen(body), 0, &err));
    root = hq__json_loadb_exact(body, strlen(body), 0, &err);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "a")),
                        "123456789012345678901234567890");
    assert_string_equal(json_string_value(json_object_get(root, "b")),
                        "-99999999999999999999");
    assert_true(json_is_real(json_object_get(root, "c")));
    assert_int_equal(json_integer_value(json_object_get(root, "d")), 7);
    assert_string_equal(json_string_value(json_object_get(root, "s")),
                        "99999999999999999999999");
    json_decref(root);
}

static void
test_json_exact_load_reports_other_errors_where_they_are(void **state)
{
    /* Two numbers that the copy quotes come before the error: it is
     * reported where jansson puts it in the same text with numbers of the
     * same length that it reads. */
    const char *body = "{\"a\":1,\n\"b\":[11111111111111111111111, "
                       "22222222222222222222222 x]}";
    const char *same = "{\"a\":1,\n\"b\":[1.111111111111111111111, "
                       "2.222222222222222222222 x]}";
    json_error_t err, plain;
    json_t *root;

    (void)state;
    root = hq__json_loadb_exact(body, strlen(body), 0, &err);
    assert_null(root);
    assert_null(json_loadb(same, strlen(same), 0, &plain));
    assert_int_equal(err.line, 2);
    assert_int_equal(err.column, plain.column);
    assert_int_equal(err.position, plain.position);
    assert_string_equal(err.text, plain.text);
    assert_null(hq__json_loadb_exact("{\"a\":1e400", 10, 0, &err));
    assert_int_not_equal(json_error_code(&err), json_error_numeric_overflow);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_exact_member_raw_keeps_every_byte_but_blanks),
        cmocka_unit_test(test_json_exact_member_raw_refuses_a_non_object),
        cmocka_unit_test(test_json_exact_load_reads_numbers_jansson_refuses),
        cmocka_unit_test(test_json_exact_load_reports_other_errors_where_they_are),
    };
    return cmocka_run_group_tests_name("json_exact", tests, NULL, NULL);
}
