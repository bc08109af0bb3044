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
    const char *user;
    unsigned nseeds;
} url_rows[] = {
    {"redis://127.0.0.1:6379/0", HQ_OK, "127.0.0.1", "", "", 6379, 0, NULL, 0},
    {"redis://localhost", HQ_OK, "localhost", "", "", 6379, 0, NULL, 0},
    {"redis://h:7000/3", HQ_OK, "h", "", "", 7000, 3, NULL, 0},
    {"redis://h/", HQ_OK, "h", "", "", 6379, 0, NULL, 0},
    {"redis://:s3cret@h:1/2", HQ_OK, "h", "", "s3cret", 1, 2, NULL, 0},
    {"redis://user:pw@h", HQ_OK, "h", "", "pw", 6379, 0, "user", 1},
    {"redis://hookq:p@ss:w@h:7/1", HQ_OK, "h", "", "p@ss:w", 7, 1, "hookq", 1},
    {"redis://justpw@h", HQ_OK, "h", "", "justpw", 6379, 0, "", 1},
    {"redis://a:7000,b:7001,c", HQ_OK, "a", "", "", 7000, 0, "", 3},
    {"redis://u:pw@a:7000,b:7001/0", HQ_OK, "a", "", "pw", 7000, 0, "u", 2},
    {"redis://a:7000,b:7001/2", HQ_EINVAL, 0, 0, 0, 0, 0, 0, 0},
    {"redis://a:7000,,b", HQ_EINVAL, 0, 0, 0, 0, 0, 0, 0},
    {"redis://a:7000,", HQ_EINVAL, 0, 0, 0, 0, 0, 0, 0},
    {"redis://a:7000,b:x", HQ_EINVAL, 0, 0, 0, 0, 0, 0, 0},
    {"redis://user:@h", HQ_EINVAL, 0, 0, 0, 0, 0, 0, 0},
    {"redis://a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", HQ_EINVAL, 0, 0, 0, 0, 0, 0, 0},
    {"unix:///tmp/r.sock", HQ_OK, "", "/tmp/r.sock", "", 6379, 0, NULL, 0},
    {"unix:///tmp/r.sock?db=4", HQ_OK, "", "/tmp/r.sock", "", 6379, 4, NULL, 0},
    {"", HQ_EINVAL, 0, 0, 0, 0, 0, NULL, 0},
    {"http://h", HQ_EINVAL, 0, 0, 0, 0, 0, NULL, 0},
    {"redis://h:0", HQ_EINVAL, 0, 0, 0, 0, 0, NULL, 0},
    {"redis://h:70000", HQ_EINVAL, 0, 0, 0, 0, 0, NULL, 0},
    {"redis://h:12x", HQ_EINVAL, 0, 0, 0, 0, 0, NULL, 0},
    {"redis://:6379", HQ_EINVAL, 0, 0, 0, 0, 0, NULL, 0},
    {"redis://h/db", HQ_EINVAL, 0, 0, 0, 0, 0, NULL, 0},
    {"unix://relative", HQ_EINVAL, 0, 0, 0, 0, 0, NULL, 0},
    {"unix:///s?x=1", HQ_EINVAL, 0, 0, 0, 0, 0, NULL, 0},
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
        assert_string_equal(a.user, url_rows[i].user ? url_rows[i].user : "");
        if (url_rows[i].nseeds)
            assert_int_equal(a.nseeds, url_rows[i].nseeds);
        if (a.nseeds) {
            assert_string_equal(a.seeds[0].host, a.host);
            assert_int_equal(a.seeds[0].port, a.port);
        }
    }
}

static void
test_store_url_seeds_are_each_host_and_port(void **state)
{
    struct hq__store_addr a;
    struct hq__err e;

    (void)state;
    assert_int_equal(hq__store_parse_url("redis://10.0.0.1:7000,10.0.0.2,n3:7002",
                                         0, &a, &e),
                     HQ_OK);
    assert_int_equal(a.nseeds, 3);
    assert_string_equal(a.seeds[1].host, "10.0.0.2");
    assert_int_equal(a.seeds[1].port, 6379);
    assert_string_equal(a.seeds[2].host, "n3");
    assert_int_equal(a.seeds[2].port, 7002);
    /* A refused url never repeats its password. */
    assert_int_equal(hq__store_parse_url("redis://u:s3cret@a:1,b:x", 0, &a, &e),
                     HQ_EINVAL);
    assert_null(strstr(e.msg, "s3cret"));
    assert_non_null(strstr(e.msg, "b:x"));
}

static void
test_store_hostport_lists_need_ports_when_asked(void **state)
{
    struct hq__store_seed s[HQ_SEEDS_MAX];
    struct hq__err e;
    unsigned n;
    const char *l = "127.0.0.1:26379,127.0.0.1:26380";

    (void)state;
    assert_int_equal(hq__store_parse_hostports(l, strlen(l), "sentinels", 1, s,
                                               &n, &e),
                     HQ_OK);
    assert_int_equal(n, 2);
    assert_int_equal(s[1].port, 26380);
    assert_int_equal(hq__store_parse_hostports("h", 1, "sentinels", 1, s, &n,
                                               &e),
                     HQ_EINVAL);
    assert_non_null(strstr(e.msg, "needs a port"));
    assert_int_equal(hq__store_parse_hostports("", 0, "sentinels", 1, s, &n, &e),
                     HQ_EINVAL);
    assert_int_equal(hq__store_parse_hostports("a b:1", 5, "sentinels", 1, s,
                                               &n, &e),
                     HQ_EINVAL);
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
        cmocka_unit_test(test_store_url_seeds_are_each_host_and_port),
        cmocka_unit_test(test_store_hostport_lists_need_ports_when_asked),
        cmocka_unit_test(test_store_prefix_carries_the_hash_tag),
        cmocka_unit_test(test_store_shards_spread_customers_and_are_stable),
        cmocka_unit_test(test_store_customer_is_before_the_last_colon),
        cmocka_unit_test(test_store_scripts_are_embedded_with_the_prelude_and_hashed),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
