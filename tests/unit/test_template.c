/* Unit tests for template.c: parsing, routes, filling and URL-encoding. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "template_int.h"

static const char *const data_json =
    "{\"post_id\": 17, \"slug\": \"a b/c?d=e&f\", \"user\": {\"id\": \"u-9\","
    " \"tags\": [\"x\", \"y z\"]}, \"price\": 2.5, \"ok\": true,"
    " \"none\": null, \"obj\": {}, \"uni\": \"\xc3\xa9\"}";

static const struct {
    const char *line;
    const char *route;
    const char *path; /* NULL: filling fails */
    const char *error;
} fills[] = {
    {"GET /posts/{data.post_id}", "GET /posts/{}", "/posts/17", NULL},
    {"/posts/{data.post_id}", "GET /posts/{}", "/posts/17", NULL},
    {"POST /c/{customer}/e/{code}", "POST /c/{}/e/{}", "/c/cu%2F1/e/post-create",
     NULL},
    {"GET /s/{data.slug}", "GET /s/{}", "/s/a%20b%2Fc%3Fd%3De%26f", NULL},
    {"GET /u/{data.user.id}/t/{data.user.tags.1}", "GET /u/{}/t/{}",
     "/u/u-9/t/y%20z", NULL},
    {"GET /p?price={data.price}&ok={data.ok}", "GET /p?price={}&ok={}",
     "/p?price=2.5&ok=true", NULL},
    {"GET /e/{data.uni}", "GET /e/{}", "/e/%C3%A9", NULL},
    {"GET /static", "GET /static", "/static", NULL},
    {"GET /m/{data.missing}", "GET /m/{}", NULL, "missing field 'data.missing'"},
    {"GET /m/{data.user.nope}", "GET /m/{}", NULL,
     "missing field 'data.user.nope'"},
    {"GET /m/{data.none}", "GET /m/{}", NULL, "missing field 'data.none'"},
    {"GET /m/{data.user.tags.5}", "GET /m/{}", NULL,
     "missing field 'data.user.tags.5'"},
    {"GET /m/{data.obj}", "GET /m/{}", NULL,
     "field 'data.obj' is an object, not a value"},
    {"GET /m/{data.user.tags}", "GET /m/{}", NULL,
     "field 'data.user.tags' is an array, not a value"},
};

static void
test_template_fills_fields_url_encoded_and_names_missing_ones(void **state)
{
    json_error_t jerr;
    json_t *data = json_loads(data_json, 0, &jerr);

    (void)state;
    assert_non_null(data);
    for (size_t i = 0; i < HQ_ARRAY_SIZE(fills); i++) {
        struct hq__template *t = NULL;
        struct hq__err err = {{0}};
        char *path = NULL;
        int rc;

        assert_int_equal(hq__template_parse(fills[i].line, &t, &err), HQ_OK);
        assert_string_equal(hq__template_route(t), fills[i].route);
        rc = hq__template_fill(t, data, "cu/1", "post-create", &path, &err);
        if (fills[i].path) {
            assert_int_equal(rc, HQ_OK);
            assert_string_equal(path, fills[i].path);
        } else {
            assert_int_equal(rc, HQ_ENOTFOUND);
            assert_null(path);
            assert_string_equal(err.msg, fills[i].error);
        }
        free(path);
        hq__template_free(t);
    }
    json_decref(data);
}

static void
test_template_without_data_fails_naming_the_field(void **state)
{
    struct hq__template *t = NULL;
    struct hq__err err;
    char *path = NULL;

    (void)state;
    assert_int_equal(hq__template_parse("GET /x/{data.a}", &t, &err), HQ_OK);
    assert_int_equal(hq__template_fill(t, NULL, "c", "k", &path, &err),
                     HQ_ENOTFOUND);
    assert_string_equal(err.msg, "missing field 'data.a'");
    hq__template_free(t);
}

static const struct {
    const char *line;
    const char *error;
} bad[] = {
    {"", "expected 'METHOD /path', e.g. 'GET /posts/{data.id}'"},
    {"get /x", "expected 'METHOD /path', e.g. 'GET /posts/{data.id}'"},
    {"GET posts", "the path must start with '/' at column 5"},
    {"GET /a/{data.x", "unclosed '{' at column 8"},
    {"GET /a/x}", "unmatched '}' at column 9"},
    {"GET /a/{da{ta}", "nested '{' at column 8"},
    {"GET /a/{user}",
     "unknown placeholder '{user}' at column 8 (use {customer}, {code} or "
     "{data.FIELD})"},
    {"GET /a/{data}",
     "'{data}' is an object, name a field below it at column 8"},
    {"GET /a/{data..x}", "empty segment in '{data..x}' at column 8"},
    {"GET /a b", "space or control character in the path at column 7"},
};

static void
test_template_rejects_malformed_lines_with_a_column(void **state)
{
    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(bad); i++) {
        struct hq__template *t = NULL;
        struct hq__err err = {{0}};

        assert_int_equal(hq__template_parse(bad[i].line, &t, &err), HQ_EINVAL);
        assert_null(t);
        assert_string_equal(err.msg, bad[i].error);
    }
}

static void
test_url_encode_keeps_unreserved_and_respects_the_size(void **state)
{
    char out[16];

    (void)state;
    assert_int_equal(hq__url_encode("aZ0-._~", 7, out, sizeof(out)), 7);
    assert_string_equal(out, "aZ0-._~");
    assert_int_equal(hq__url_encode("a b", 3, out, sizeof(out)), 5);
    assert_string_equal(out, "a%20b");
    assert_int_equal(hq__url_encode("/////", 5, out, sizeof(out)), 15);
    assert_int_equal(hq__url_encode("//////", 6, out, sizeof(out)), (size_t)-1);
    assert_int_equal(hq__url_encode("////", 4, out, 13), 12);
    assert_int_equal(hq__url_encode("////", 4, out, 12), (size_t)-1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_template_fills_fields_url_encoded_and_names_missing_ones),
        cmocka_unit_test(test_template_without_data_fails_naming_the_field),
        cmocka_unit_test(test_template_rejects_malformed_lines_with_a_column),
        cmocka_unit_test(test_url_encode_keeps_unreserved_and_respects_the_size),
    };
    return cmocka_run_group_tests_name("template", tests, NULL, NULL);
}
