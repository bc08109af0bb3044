/* Unit tests for store.c: URL parsing, key names, shards, script table. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "scripts_int.h"
#include "store_int.h"

static const struct {
    const char *url;
    int rc;
    const char *host, *unix_path, *password;
    int port, db;
} url_rows[] = {
    {"redis://127.0.0.1:6379/0", HQ_OK, "127.0.0.1", "", "", 6379, 0},
    {"redis://localhost", HQ_OK, "localhost", "", "", 6379, 0},
    {"redis://h:7000/3", HQ_OK, "h", "", "", 7000, 3},
    {"redis://h/", HQ_OK, "h", "", "", 6379, 0},
    {"redis://:s3cret@h:1/2", HQ_OK, "h", "", "s3cret", 1, 2},
    {"redis://user:pw@h", HQ_OK, "h", "", "pw", 6379, 0},
    {"unix:///tmp/r.sock", HQ_OK, "", "/tmp/r.sock", "", 6379, 0},
    {"unix:///tmp/r.sock?db=4", HQ_OK, "", "/tmp/r.sock", "", 6379, 4},
    {"", HQ_EINVAL, 0, 0, 0, 0, 0},
    {"http://h", HQ_EINVAL, 0, 0, 0, 0, 0},
    {"redis://h:0", HQ_EINVAL, 0, 0, 0, 0, 0},
    {"redis://h:70000", HQ_EINVAL, 0, 0, 0, 0, 0},
    {"redis://h:12x", HQ_EINVAL, 0, 0, 0, 0, 0},
    {"redis://:6379", HQ_EINVAL, 0, 0, 0, 0, 0},
    {"redis://h/db", HQ_EINVAL, 0, 0, 0, 0, 0},
    {"unix://relative", HQ_EINVAL, 0, 0, 0, 0, 0},
    {"unix:///s?x=1", HQ_EINVAL, 0, 0, 0, 0, 0},
};

static void
test_store_parses_redis_and_unix_urls(void **state)
{
    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(url_rows); i++) {
        struct hq__store_addr a;
        struct hq__err e = {{0}};
        int rc = hq__store_parse_url(url_rows[i].url, 0, &a, &e);

        if (rc != url_rows[i].rc)
            fail_msg("url '%s': rc %d, want %d (%s)", url_rows[i].url, rc,
                     url_rows[i].rc, e.msg);
        if (rc != HQ_OK) {
            assert_true(strlen(e.msg) > 0);
            continue;
        }
        assert_string_equal(a.host, url_rows[i].host);
        assert_string_equal(a.unix_path, url_rows[i].unix_path);
        assert_string_equal(a.password, url_rows[i].password);
        assert_int_equal(a.port, url_rows[i].port);
        assert_int_equal(a.db, url_rows[i].db);
        assert_int_equal(a.timeout_ms, 5000);
    }
}

static void
test_store_prefix_carries_the_hash_tag(void **state)
{
    struct hq__store_ns ns;
    struct hq__err e;
    char buf[HQ_PREFIX_MAX];

    (void)state;
    assert_int_equal(hq__store_ns_init(&ns, NULL, 0, &e), HQ_OK);
    assert_int_equal(hq__store_prefix(&ns, 0, buf, sizeof(buf)), 10);
    assert_string_equal(buf, "{hookq:0}:");
    assert_int_equal(hq__store_ns_init(&ns, "a{b", 1, &e), HQ_EINVAL);
    assert_int_equal(hq__store_ns_init(&ns, "x", 2000, &e), HQ_EINVAL);
}

static void
test_store_shards_spread_customers_and_are_stable(void **state)
{
    struct hq__store_ns ns;
    struct hq__err e;
    unsigned seen[4] = {0};

    (void)state;
    hq__store_ns_init(&ns, "hq", 4, &e);
    for (int i = 0; i < 400; i++) {
        char c[16];
        int n = snprintf(c, sizeof(c), "cust%d", i);
        unsigned s = hq__store_shard_of(&ns, c, (size_t)n);
        assert_true(s < 4);
        assert_int_equal(s, hq__store_shard_of(&ns, c, (size_t)n));
        seen[s]++;
    }
    for (int s = 0; s < 4; s++)
        assert_true(seen[s] > 50);
    hq__store_ns_init(&ns, "hq", 1, &e);
    assert_int_equal(hq__store_shard_of(&ns, "x", 1), 0);
}

static void
test_store_customer_is_before_the_last_colon(void **state)
{
    size_t n;

    (void)state;
    assert_int_equal(hq__store_key_customer("acme:post-create", 16, &n), HQ_OK);
    assert_int_equal(n, 4);
    assert_int_equal(hq__store_key_customer("a:b:c", 5, &n), HQ_OK);
    assert_int_equal(n, 3);
    assert_int_equal(hq__store_key_customer("nocolon", 7, &n), HQ_EINVAL);
    assert_int_equal(hq__store_key_customer(":code", 5, &n), HQ_EINVAL);
    assert_int_equal(hq__store_key_customer("cust:", 5, &n), HQ_EINVAL);
}

static void
test_store_scripts_are_embedded_with_the_prelude_and_hashed(void **state)
{
    const struct hq__script *s;
    const char *sha;

    (void)state;
    s = hq__store_script("settle");
    assert_non_null(s);
    assert_non_null(strstr(s->src, "local function schedule"));
    assert_non_null(strstr(s->src, "claim_n"));
    assert_null(hq__store_script("_prelude"));
    assert_null(hq__store_script("nope"));
    sha = hq__store_script_sha("enqueue");
    assert_non_null(sha);
    assert_int_equal(strlen(sha), 40);
    assert_string_not_equal(sha, hq__store_script_sha("settle"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_parses_redis_and_unix_urls),
        cmocka_unit_test(test_store_prefix_carries_the_hash_tag),
        cmocka_unit_test(test_store_shards_spread_customers_and_are_stable),
        cmocka_unit_test(test_store_customer_is_before_the_last_colon),
        cmocka_unit_test(test_store_scripts_are_embedded_with_the_prelude_and_hashed),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
