/*
 * Unit tests for limiter.c's client side, without Redis: reading the
 * script's answers, naming endpoints, and the 429 back-off (with the
 * Retry-After parser it relies on). The script itself is tested against a
 * real Redis in tests/integration/test_limiter.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "limiter_int.h"
#include "curl_event_int.h"

static redisReply *
int_reply(long long v)
{
    static redisReply r[8];
    static int i;
    redisReply *x = &r[i++ % 8];

    memset(x, 0, sizeof(*x));
    x->type = REDIS_REPLY_INTEGER;
    x->integer = v;
    return x;
}

static void
test_limiter_reads_each_verdict_of_the_script(void **state)
{
    redisReply tok = {0}, arr = {0}, err = {0};
    redisReply *el[4];
    struct hq__limit_answer a;

    (void)state;
    arr.type = REDIS_REPLY_ARRAY;
    arr.element = el;

    el[0] = int_reply(1);
    el[1] = int_reply(1795735714644);
    tok.type = REDIS_REPLY_STRING;
    tok.str = "s3cret";
    tok.len = 6;
    el[2] = &tok;
    el[3] = int_reply(12);
    arr.elements = 4;
    assert_int_equal(hq__limit_parse(&arr, &a), HQ_OK);
    assert_int_equal(a.verdict, HQ_LIMIT_GO);
    assert_int_equal(a.at_ms, 1795735714644);
    assert_int_equal(a.wait_ms, 12);
    assert_string_equal(a.token, "s3cret");
    assert_int_equal(a.token_len, 6);

    el[0] = int_reply(0);
    el[1] = int_reply(973);
    arr.elements = 2;
    assert_int_equal(hq__limit_parse(&arr, &a), HQ_OK);
    assert_int_equal(a.verdict, HQ_LIMIT_WAIT);
    assert_int_equal(a.wait_ms, 973);

    el[0] = int_reply(-1);
    arr.elements = 1;
    assert_int_equal(hq__limit_parse(&arr, &a), HQ_OK);
    assert_int_equal(a.verdict, HQ_LIMIT_STALE);

    el[0] = int_reply(-2);
    assert_int_equal(hq__limit_parse(&arr, &a), HQ_OK);
    assert_int_equal(a.verdict, HQ_LIMIT_NO_TOKEN);

    /* Malformed: a grant without its token; an unknown verdict. */
    el[0] = int_reply(1);
    el[1] = int_reply(5);
    arr.elements = 2;
    assert_int_equal(hq__limit_parse(&arr, &a), HQ_EPROTO);
    assert_int_equal(a.verdict, HQ_LIMIT_ERROR);
    el[0] = int_reply(7);
    assert_int_equal(hq__limit_parse(&arr, &a), HQ_EPROTO);

    err.type = REDIS_REPLY_ERROR;
    err.str = "ERR boom";
    assert_int_equal(hq__limit_parse(&err, &a), HQ_EPROTO);
    assert_string_equal(a.error, "ERR boom");
    assert_int_equal(hq__limit_parse(NULL, &a), HQ_EPROTO);
    assert_string_equal(a.error, "redis connection lost");
}

static void
test_limiter_endpoint_is_the_route_or_the_concrete_url(void **state)
{
    char buf[64];

    (void)state;
    assert_int_equal(hq__limit_endpoint(1, "GET /posts/{}", "GET",
                                        "http://a/posts/7", buf, sizeof(buf)),
                     HQ_OK);
    assert_string_equal(buf, "GET /posts/{}");
    assert_int_equal(hq__limit_endpoint(0, "GET /posts/{}", "GET",
                                        "http://a/posts/7", buf, sizeof(buf)),
                     HQ_OK);
    assert_string_equal(buf, "GET http://a/posts/7");
    assert_int_equal(hq__limit_endpoint(0, "r", "GET", "http://a/posts/7", buf,
                                        20),
                     HQ_EINVAL);
}

/* POST /api/limit's endpoint, as [api] endpoint counts hookq's fetches. */
static const struct {
    int route;
    const char *in, *want; /* want NULL: refused */
} norm_rows[] = {
    {1, "GET /posts/{}", "GET /posts/{}"},
    {1, "get /posts/{post_id}", "GET /posts/{}"},
    {1, "POST /a/{x}/b/{y.z}", "POST /a/{}/b/{}"},
    {1, "GET http://api.test:9000/posts/{id}", "GET /posts/{}"},
    {1, "GET http://api.test:9000", NULL},
    {1, "GET /posts/17", "GET /posts/17"},
    {0, "GET /posts/17", "GET http://api.test:9000/posts/17"},
    {0, "GET https://other/x", "GET https://other/x"},
    {1, "/posts/{}", NULL},
    {1, "GET posts", NULL},
    {1, "GET /posts/{", NULL},
    {1, "G3T /x", NULL},
    {1, "GET /a b", NULL},
    {1, "GET /a\tb", NULL},
    {1, " /x", NULL},
};

static void
test_limiter_app_endpoint_is_normalized_as_fetches_count(void **state)
{
    char buf[64];
    struct hq__err err;

    (void)state;
    for (size_t i = 0; i < sizeof(norm_rows) / sizeof(norm_rows[0]); i++) {
        int rc = hq__limit_endpoint_norm(norm_rows[i].route,
                                         "http://api.test:9000/", norm_rows[i].in,
                                         buf, sizeof(buf), &err);

        if (norm_rows[i].want == NULL) {
            assert_int_equal(rc, HQ_EINVAL);
            assert_true(err.msg[0] != '\0');
        } else {
            if (rc != HQ_OK)
                print_error("row %zu: %s\n", i, err.msg);
            assert_int_equal(rc, HQ_OK);
            assert_string_equal(buf, norm_rows[i].want);
        }
    }
    assert_int_equal(hq__limit_endpoint_norm(1, "", "GET /a/very/long/path/that"
                                             "/does/not/fit/in/sixty-four/bytes/at/all",
                                             buf, sizeof(buf), &err),
                     HQ_EINVAL);
}

static void
test_limiter_429_waits_retry_after_else_one_window(void **state)
{
    struct hq__limit_rate rate = {2, 1000, 25};

    (void)state;
    assert_int_equal(hq__limit_backoff_429(&rate, 3000), 3025);
    assert_int_equal(hq__limit_backoff_429(&rate, 0), 25);
    assert_int_equal(hq__limit_backoff_429(&rate, -1), 1025);
}

static const struct {
    const char *value;
    int64_t ms;
} retry_after[] = {
    {"2", 2000},
    {" 120 ", 120000},
    {"0", 0},
    /* 1795735714 is Thu, 26 Nov 2026 23:28:34 GMT. */
    {"Thu, 26 Nov 2026 23:28:44 GMT", 10000},
    {"Thu, 26 Nov 2026 23:28:00 GMT", 0},
    {"soon", -1},
    {"1.5", -1},
    {"", -1},
    /* The largest delay in ms an int64_t holds, and past it (fuzz_retry_after). */
    {"9223372036854775", INT64_C(9223372036854775000)},
    {"9223372036854776", -1},
    {"99999999999999999999", -1},
    {"Thu, 26 Nov 368523372 23:28:44 GMT", -1},
};

static void
test_retry_after_takes_seconds_or_an_http_date(void **state)
{
    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(retry_after); i++)
        assert_int_equal(
            hq__http_parse_retry_after(retry_after[i].value, 1795735714),
            retry_after[i].ms);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limiter_reads_each_verdict_of_the_script),
        cmocka_unit_test(test_limiter_endpoint_is_the_route_or_the_concrete_url),
        cmocka_unit_test(test_limiter_app_endpoint_is_normalized_as_fetches_count),
        cmocka_unit_test(test_limiter_429_waits_retry_after_else_one_window),
        cmocka_unit_test(test_retry_after_takes_seconds_or_an_http_date),
    };
    return cmocka_run_group_tests_name("limiter", tests, NULL, NULL);
}
