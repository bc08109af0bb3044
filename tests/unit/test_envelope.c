/*
 * Unit tests for envelope.c: the checks of DESIGN §3.3 in their order, the
 * customer by JSON pointer (RFC 6901) or header, from a table of rows.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope_int.h"

struct row {
    const char *pointer; /* intake.customer */
    const char *body;
    int result;
    const char *customer; /* expected on success */
    const char *detail;   /* a substring of the detail on failure */
};

static const struct row rows[] = {
    {"/data/customer_id", "{\"code\":\"post-create\",\"data\":{\"customer_id\":\"c-1\"}}",
     HQ_ENV_OK, "c-1", NULL},
    {"/data/customer_id", "{\"code\":\"post-create\",\"data\":{\"customer_id\":42}}",
     HQ_ENV_OK, "42", NULL},
    {"/data/customer_id", "{\"code\":\"x\",\"data\":{\"customer_id\":-7}}",
     HQ_ENV_OK, "-7", NULL},
    {"/data/customer_id", "{\"code\":\"x\",\"data\":{\"customer_id\":9007199254740993}}",
     HQ_ENV_OK, "9007199254740993", NULL},
    {"/a~1b/c~0d", "{\"code\":\"x\",\"data\":1,\"a/b\":{\"c~d\":\"esc\"}}",
     HQ_ENV_OK, "esc", NULL},
    {"/data/list/1", "{\"code\":\"x\",\"data\":{\"list\":[\"a\",\"b\"]}}",
     HQ_ENV_OK, "b", NULL},
    {"/data/list/01", "{\"code\":\"x\",\"data\":{\"list\":[\"a\",\"b\"]}}",
     HQ_ENV_MISSING_CUSTOMER, NULL, "absent"},
    {"/data/list/-", "{\"code\":\"x\",\"data\":{\"list\":[\"a\",\"b\"]}}",
     HQ_ENV_MISSING_CUSTOMER, NULL, "absent"},
    {"/", "{\"code\":\"x\",\"data\":1,\"\":\"empty-name\"}",
     HQ_ENV_OK, "empty-name", NULL},
    {"/customer", "{\"data\":null,\"customer\":\"c\",\"code\":\"x\"}",
     HQ_ENV_OK, "c", NULL},

    /* JSON syntax first. */
    {"/data/customer_id", "", HQ_ENV_INVALID_JSON, NULL, "line 1"},
    {"/data/customer_id", "{\"code\":\"x\",\"data\":{\"customer_id\":\"c",
     HQ_ENV_INVALID_JSON, NULL, "column"},
    {"/data/customer_id", "[{\"code\":\"x\"}]", HQ_ENV_INVALID_JSON, NULL, "array"},
    {"/data/customer_id", "\"just a string\"", HQ_ENV_INVALID_JSON, NULL, NULL},
    {"/data/customer_id", "42", HQ_ENV_INVALID_JSON, NULL, NULL},
    {"/data/customer_id", "{\"code\":\"x\"} {}", HQ_ENV_INVALID_JSON, NULL, NULL},
    {"/data/customer_id", "{\"code\":\"\xff\",\"data\":1}", HQ_ENV_INVALID_JSON,
     NULL, NULL},
    {"/data/customer_id", "{\"code\":\"\xc3\x28\",\"data\":1}",
     HQ_ENV_INVALID_JSON, NULL, NULL},
    {"/data/customer_id", "{\"code\":\"a\\u0000b\",\"data\":1}",
     HQ_ENV_INVALID_JSON, NULL, NULL},

    /* Then code, data, customer, in that order. */
    {"/data/customer_id", "{}", HQ_ENV_MISSING_CODE, NULL, "absent"},
    {"/data/customer_id", "{\"code\":\"\",\"data\":1}", HQ_ENV_MISSING_CODE, NULL, NULL},
    {"/data/customer_id", "{\"code\":7,\"data\":1}", HQ_ENV_MISSING_CODE, NULL, NULL},
    {"/data/customer_id", "{\"code\":null,\"data\":1}", HQ_ENV_MISSING_CODE, NULL, NULL},
    {"/data/customer_id", "{\"code\":\"x\"}", HQ_ENV_MISSING_DATA, NULL, "data"},
    {"/data/customer_id", "{\"code\":\"x\",\"data\":{}}", HQ_ENV_MISSING_CUSTOMER,
     NULL, "/data/customer_id"},
    {"/data/customer_id", "{\"code\":\"x\",\"data\":{\"customer_id\":null}}",
     HQ_ENV_MISSING_CUSTOMER, NULL, NULL},
    {"/data/customer_id", "{\"code\":\"x\",\"data\":{\"customer_id\":\"\"}}",
     HQ_ENV_MISSING_CUSTOMER, NULL, NULL},
    {"/data/customer_id", "{\"code\":\"x\",\"data\":{\"customer_id\":1.5}}",
     HQ_ENV_MISSING_CUSTOMER, NULL, NULL},
    {"/data/customer_id", "{\"code\":\"x\",\"data\":{\"customer_id\":true}}",
     HQ_ENV_MISSING_CUSTOMER, NULL, NULL},
    {"/data/customer_id", "{\"code\":\"x\",\"data\":{\"customer_id\":{}}}",
     HQ_ENV_MISSING_CUSTOMER, NULL, NULL},
    {"/data/customer_id", "{\"code\":\"x\",\"data\":\"str\"}",
     HQ_ENV_MISSING_CUSTOMER, NULL, NULL},
};

static void
test_envelope_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(rows); i++) {
        const struct row *r = &rows[i];
        struct hq__customer_spec spec;
        struct hq__envelope env;
        struct hq__err err;
        char detail[HQ_ENV_DETAIL_MAX];
        int rc;

        assert_int_equal(hq__customer_spec_init(&spec, r->pointer, &err), HQ_OK);
        rc = hq__envelope_parse(&spec, r->body, strlen(r->body), NULL, 0, &env,
                                detail, sizeof(detail));
        if (rc != r->result)
            fail_msg("row %zu (%s): got %s (%s), want %s", i, r->body,
                     hq__env_result_name(rc), detail,
                     hq__env_result_name(r->result));
        if (rc == HQ_ENV_OK) {
            assert_string_equal(env.customer, r->customer);
            assert_int_equal(env.customer_len, strlen(r->customer));
        } else {
            assert_true(detail[0] != '\0');
            if (r->detail != NULL && strstr(detail, r->detail) == NULL)
                fail_msg("row %zu: detail '%s' lacks '%s'", i, detail, r->detail);
        }
        hq__envelope_release(&env);
        hq__customer_spec_release(&spec);
    }
}

static void
test_envelope_code_is_copied(void **state)
{
    struct hq__customer_spec spec;
    struct hq__envelope env;
    struct hq__err err;
    char detail[HQ_ENV_DETAIL_MAX];
    const char *body = "{\"code\":\"post-create\",\"data\":{\"customer_id\":\"c\"}}";

    (void)state;
    assert_int_equal(hq__customer_spec_init(&spec, NULL, &err), HQ_OK);
    assert_int_equal(hq__envelope_parse(&spec, body, strlen(body), NULL, 0,
                                        &env, detail, sizeof(detail)), HQ_ENV_OK);
    assert_string_equal(env.code, "post-create");
    assert_int_equal(env.code_len, 11);
    hq__envelope_release(&env);
    hq__customer_spec_release(&spec);
}

static void
test_envelope_invalid_json_detail_has_line_and_column(void **state)
{
    struct hq__customer_spec spec;
    struct hq__envelope env;
    struct hq__err err;
    char detail[HQ_ENV_DETAIL_MAX];
    const char *body = "{\n  \"code\": \"x\",\n  \"data\": [1, 2,, 3]\n}";

    (void)state;
    assert_int_equal(hq__customer_spec_init(&spec, NULL, &err), HQ_OK);
    assert_int_equal(hq__envelope_parse(&spec, body, strlen(body), NULL, 0,
                                        &env, detail, sizeof(detail)),
                     HQ_ENV_INVALID_JSON);
    assert_non_null(strstr(detail, "line 3 column"));
    hq__envelope_release(&env);
    hq__customer_spec_release(&spec);
}

static void
test_envelope_deep_nesting_is_invalid_json(void **state)
{
    struct hq__customer_spec spec;
    struct hq__envelope env;
    struct hq__err err;
    char detail[HQ_ENV_DETAIL_MAX];
    size_t depth = 10000, n = 0;
    char *body = malloc(depth * 2 + 64);

    (void)state;
    assert_non_null(body);
    n += (size_t)snprintf(body, 64, "{\"code\":\"x\",\"data\":");
    for (size_t i = 0; i < depth; i++)
        body[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        body[n++] = ']';
    body[n++] = '}';
    assert_int_equal(hq__customer_spec_init(&spec, NULL, &err), HQ_OK);
    assert_int_equal(hq__envelope_parse(&spec, body, n, NULL, 0, &env, detail,
                                        sizeof(detail)), HQ_ENV_INVALID_JSON);
    assert_non_null(strstr(detail, "depth"));
    hq__envelope_release(&env);
    hq__customer_spec_release(&spec);
    free(body);
}

static void
test_envelope_customer_from_header(void **state)
{
    struct hq__customer_spec spec;
    struct hq__envelope env;
    struct hq__err err;
    char detail[HQ_ENV_DETAIL_MAX];
    const char *body = "{\"code\":\"x\",\"data\":{}}";

    (void)state;
    assert_int_equal(hq__customer_spec_init(&spec, "header:X-Customer", &err), HQ_OK);
    assert_int_equal(spec.from_header, 1);
    assert_string_equal(spec.name, "X-Customer");
    assert_int_equal(hq__envelope_parse(&spec, body, strlen(body), "acme", 4,
                                        &env, detail, sizeof(detail)), HQ_ENV_OK);
    assert_string_equal(env.customer, "acme");
    hq__envelope_release(&env);
    assert_int_equal(hq__envelope_parse(&spec, body, strlen(body), NULL, 0,
                                        &env, detail, sizeof(detail)),
                     HQ_ENV_MISSING_CUSTOMER);
    assert_non_null(strstr(detail, "X-Customer"));
    hq__envelope_release(&env);
    assert_int_equal(hq__envelope_parse(&spec, body, strlen(body), "", 0,
                                        &env, detail, sizeof(detail)),
                     HQ_ENV_MISSING_CUSTOMER);
    hq__envelope_release(&env);
    /* The body's own checks still come first. */
    assert_int_equal(hq__envelope_parse(&spec, "{}", 2, "acme", 4, &env,
                                        detail, sizeof(detail)),
                     HQ_ENV_MISSING_CODE);
    hq__envelope_release(&env);
    hq__customer_spec_release(&spec);
}

static void
test_envelope_bad_customer_specs_are_rejected(void **state)
{
    static const char *const bad[] = {
        "data/customer_id", "/data/~2", "/data/~", "header:", "header:a b",
    };
    struct hq__customer_spec spec;
    struct hq__err err;

    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(bad); i++) {
        assert_int_equal(hq__customer_spec_init(&spec, bad[i], &err), HQ_EINVAL);
        hq__customer_spec_release(&spec);
    }
    assert_int_equal(hq__customer_spec_init(&spec, "", &err), HQ_OK);
    hq__customer_spec_release(&spec);
}

/* Plain bodies take the fast path, with the same answer as jansson. */
static void
test_envelope_fast_path_takes_plain_bodies(void **state)
{
    static const char *const plain[] = {
        "{\"code\":\"post-create\",\"data\":{\"customer_id\":\"c-1\"}}",
        " {\n \"data\" : {\"x\":[1,2.5,-3,true,false,null,{}],\"customer_id\":77},"
        "\"code\":\"p\", \"other\":\"\\u00e9\\n\xc3\xa9\"}\n",
        "{\"code\":\"x\",\"data\":{\"customer_id\":-0}}",
        "{\"code\":\"x\",\"data\":{\"customer_id\":\"\xf0\x9f\x98\x80\"}}",
    };
    struct hq__customer_spec spec;
    struct hq__err err;

    (void)state;
    assert_int_equal(hq__customer_spec_init(&spec, NULL, &err), HQ_OK);
    for (size_t i = 0; i < HQ_ARRAY_SIZE(plain); i++) {
        struct hq__envelope a, b;
        char detail[HQ_ENV_DETAIL_MAX];

        if (!hq__envelope_parse_fast(&spec, plain[i], strlen(plain[i]), NULL, 0, &a))
            fail_msg("row %zu not taken by the fast path", i);
        assert_int_equal(hq__envelope_parse_jansson(&spec, plain[i], strlen(plain[i]),
                                                    NULL, 0, &b, detail,
                                                    sizeof(detail)), HQ_ENV_OK);
        assert_string_equal(a.code, b.code);
        assert_string_equal(a.customer, b.customer);
        hq__envelope_release(&a);
        hq__envelope_release(&b);
    }
    hq__customer_spec_release(&spec);
}

/*
 * Mutate bodies at random: whenever the fast path accepts one, jansson
 * must accept it too, with the same code and customer.
 */
static void
test_envelope_fast_path_agrees_with_jansson(void **state)
{
    static const char *const seeds[] = {
        "{\"code\":\"post-create\",\"data\":{\"customer_id\":\"c-1\",\"n\":[1,2]}}",
        "{\"data\":{\"customer_id\":12345,\"t\":\"a\\\"b\"},\"code\":\"x\"}",
        "{\"code\":\"x\",\"data\":{\"customer_id\":\"\xc3\xa9\"},\"z\":1.5}",
    };
    static const char *const bits[] = {
        "\\", "\"", "\\u0000", "\\ud800", "\xff", "\xc3", "\xed\xa0\x80", "{", "}",
        "[", "]", ",", ":", "0", "9", "e5", "-", ".", " ", "\"code\":\"y\",",
        "\"data\":1,", "\"customer_id\":\"d\",", "99999999999999999999", "\t",
        "\x01", "true", "nul", "\\u00e9", "\"customer_id\":null,",
    };
    static const char *const pointers[] = {
        "/data/customer_id", "/data/n/1", "/code", "/z", "header:X-C",
    };
    unsigned seed = 12345;
    char buf[512];
    int fast_ok = 0;

    (void)state;
    for (size_t pi = 0; pi < HQ_ARRAY_SIZE(pointers); pi++) {
        struct hq__customer_spec spec;
        struct hq__err err;

        assert_int_equal(hq__customer_spec_init(&spec, pointers[pi], &err), HQ_OK);
        for (int iter = 0; iter < 20000; iter++) {
            const char *base = seeds[iter % HQ_ARRAY_SIZE(seeds)];
            size_t len = strlen(base);
            struct hq__envelope a, b;
            char detail[HQ_ENV_DETAIL_MAX];
            int nmut;

            memcpy(buf, base, len);
            seed = seed * 1103515245u + 12345u;
            nmut = (int)((seed >> 16) % 3);
            for (int m = 0; m < nmut; m++) {
                size_t at, blen;
                const char *bit;

                seed = seed * 1103515245u + 12345u;
                at = (seed >> 8) % (len + 1);
                seed = seed * 1103515245u + 12345u;
                bit = bits[(seed >> 16) % HQ_ARRAY_SIZE(bits)];
                blen = strlen(bit);
                seed = seed * 1103515245u + 12345u;
                if ((seed >> 20) % 3 == 0 && at < len) {
                    memmove(buf + at, buf + at + 1, len - at - 1); /* delete */
                    len--;
                } else if (len + blen < sizeof(buf)) {
                    memmove(buf + at + blen, buf + at, len - at); /* insert */
                    memcpy(buf + at, bit, blen);
                    len += blen;
                }
            }
            if (!hq__envelope_parse_fast(&spec, buf, len, "hc", 2, &a))
                continue;
            fast_ok++;
            if (hq__envelope_parse_jansson(&spec, buf, len, "hc", 2, &b, detail,
                                           sizeof(detail)) != HQ_ENV_OK)
                fail_msg("fast path accepted what jansson rejects (%s): %.*s",
                         detail, (int)len, buf);
            assert_string_equal(a.code, b.code);
            assert_int_equal(a.customer_len, b.customer_len);
            assert_memory_equal(a.customer, b.customer, a.customer_len);
            hq__envelope_release(&a);
            hq__envelope_release(&b);
        }
        hq__customer_spec_release(&spec);
    }
    assert_true(fast_ok > 1000); /* the fast path was really exercised */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_table),
        cmocka_unit_test(test_envelope_code_is_copied),
        cmocka_unit_test(test_envelope_invalid_json_detail_has_line_and_column),
        cmocka_unit_test(test_envelope_deep_nesting_is_invalid_json),
        cmocka_unit_test(test_envelope_customer_from_header),
        cmocka_unit_test(test_envelope_bad_customer_specs_are_rejected),
        cmocka_unit_test(test_envelope_fast_path_takes_plain_bodies),
        cmocka_unit_test(test_envelope_fast_path_agrees_with_jansson),
    };
    return cmocka_run_group_tests_name("envelope", tests, NULL, NULL);
}
