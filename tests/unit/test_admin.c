/*
 * Unit tests for the parts of admin.c that need no Redis: dead
 * letter ids, key checks, state names, and the stats JSON.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "admin_int.h"

static void
test_admin_job_id_names_its_shard(void **state)
{
    static const struct {
        const char *id;
        unsigned shards;
        int rc;
        unsigned shard;
    } rows[] = {
        {"0-1", 1, HQ_OK, 0},
        {"3-99", 4, HQ_OK, 3},
        {"4-99", 4, HQ_EINVAL, 0},   /* no such shard */
        {"0-0", 1, HQ_EINVAL, 0},    /* counters start at 1 */
        {"x-1", 1, HQ_EINVAL, 0},
        {"0-", 1, HQ_EINVAL, 0},
        {"-1", 1, HQ_EINVAL, 0},
        {"01", 1, HQ_EINVAL, 0},
        {"0-1x", 1, HQ_EINVAL, 0},
        {"+0-1", 1, HQ_EINVAL, 0},
        {"0-+1", 1, HQ_EINVAL, 0},
        {"-1-1", 1, HQ_EINVAL, 0},
        /* Found by fuzz_admin: strtoll() skipped blanks and clamped. */
        {" 1-2", 4, HQ_EINVAL, 0},
        {"\r0-1", 1, HQ_EINVAL, 0},
        {"0- 1", 1, HQ_EINVAL, 0},
        {"0-99999999999999999999", 1, HQ_EINVAL, 0},
        {"0-999999999999999999", 1, HQ_OK, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        unsigned shard = 77;

        assert_int_equal(hq__job_id_shard(rows[i].id, rows[i].shards, &shard),
                         rows[i].rc);
        if (rows[i].rc == HQ_OK)
            assert_int_equal(shard, rows[i].shard);
    }
}

static void
test_admin_keys_must_be_customer_colon_code(void **state)
{
    static const struct {
        const char *key;
        int rc;
        size_t custlen;
    } rows[] = {
        {"acme:post-create", HQ_OK, 4},
        {"a:b:c", HQ_OK, 3},          /* the customer is before the last ':' */
        {"", HQ_EINVAL, 0},
        {"acme", HQ_EINVAL, 0},
        {":code", HQ_EINVAL, 0},
        {"acme:", HQ_EINVAL, 0},
        {"ac\nme:x", HQ_EINVAL, 0},
    };
    struct hq__err err;

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t custlen = 0;

        err.msg[0] = '\0';
        assert_int_equal(hq__admin_check_key(rows[i].key, &custlen, &err), rows[i].rc);
        if (rows[i].rc == HQ_OK)
            assert_int_equal(custlen, rows[i].custlen);
        else
            assert_true(err.msg[0] != '\0');
    }
    assert_int_equal(hq__admin_check_key(NULL, NULL, &err), HQ_EINVAL);
}

static void
test_admin_state_names_round_trip(void **state)
{
    (void)state;
    for (int s = HQ_KEY_IDLE; s <= HQ_KEY_HELD; s++)
        assert_int_equal(hq_key_state_parse(hq_key_state_name(s)), s);
    assert_string_equal(hq_key_state_name(HQ_KEY_HELD), "held");
    assert_string_equal(hq_key_state_name(99), "?");
    assert_int_equal(hq_key_state_parse("sleeping"), -1);
    assert_int_equal(hq_key_state_parse(NULL), -1);
}

/* A stats sample built by hand: two shards, two counters, one top key. */
static void
sample(struct hq_stats *s, int64_t t, int64_t accepted)
{
    memset(s, 0, sizeof(*s));
    s->time_ms = t;
    s->nshards = 2;
    s->shards = calloc(2, sizeof(*s->shards));
    s->shards[0].jobs = 7;
    s->shards[0].ready_keys = 2;
    s->shards[1].jobs = 3;
    s->shards[1].held = 1;
    s->shards[1].dead_letters = 4;
    s->total.jobs = 10;
    s->total.ready_keys = 2;
    s->total.held = 1;
    s->total.dead_letters = 4;
    s->ncounters = 2;
    s->counters = calloc(2, sizeof(*s->counters));
    memcpy(s->counters[0].name, "accepted", 9);
    s->counters[0].value = accepted;
    memcpy(s->counters[1].name, "done", 5);
    s->counters[1].value = 5;
    s->ntop = 1;
    s->top = calloc(1, sizeof(*s->top));
    s->top[0].key = strdup("acme:e");
    s->top[0].state = HQ_KEY_HELD;
    s->top[0].depth = 3;
    s->top[0].when_ms = -1;
    s->top[0].reason = strdup("operator");
    s->top[0].error = strdup("");
}

static void
test_admin_stats_json_has_totals_shards_counters_rates_and_top_keys(void **state)
{
    struct hq_stats prev, cur;
    json_error_t jerr;
    json_t *root, *v;
    char *js;

    (void)state;
    sample(&prev, 1000000, 100);
    sample(&cur, 1002000, 110);
    assert_int_equal(hq_stats_counter(&cur, "accepted"), 110);
    assert_int_equal(hq_stats_counter(&cur, "nope"), 0);

    js = hq_stats_json(&cur, &prev);
    assert_non_null(js);
    root = json_loads(js, 0, &jerr);
    assert_non_null(root);
    assert_int_equal(json_integer_value(json_object_get(root, "time_ms")), 1002000);
    assert_int_equal(json_integer_value(json_object_get(root, "shards")), 2);
    v = json_object_get(root, "total");
    assert_int_equal(json_integer_value(json_object_get(v, "jobs")), 10);
    assert_int_equal(json_integer_value(json_object_get(v, "dead_letters")), 4);
    v = json_object_get(root, "per_shard");
    assert_int_equal(json_array_size(v), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(v, 1), "shard")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(v, 1), "held")), 1);
    v = json_object_get(root, "counters");
    assert_int_equal(json_integer_value(json_object_get(v, "accepted")), 110);
    v = json_object_get(root, "rates");
    assert_true(json_real_value(json_object_get(v, "accepted")) > 4.99 &&
                json_real_value(json_object_get(v, "accepted")) < 5.01);
    assert_true(json_real_value(json_object_get(v, "done")) == 0.0);
    assert_int_equal(json_integer_value(json_object_get(v, "interval_ms")), 2000);
    v = json_array_get(json_object_get(root, "top_keys"), 0);
    assert_string_equal(json_string_value(json_object_get(v, "key")), "acme:e");
    assert_string_equal(json_string_value(json_object_get(v, "state")), "held");
    assert_string_equal(json_string_value(json_object_get(v, "reason")), "operator");
    assert_null(json_object_get(v, "error"));
    assert_null(json_object_get(v, "due_ms"));
    json_decref(root);
    free(js);

    /* Without an earlier sample there are no rates. */
    js = hq_stats_json(&cur, NULL);
    root = json_loads(js, 0, &jerr);
    assert_non_null(root);
    assert_null(json_object_get(root, "rates"));
    json_decref(root);
    free(js);
    hq_stats_release(&prev);
    hq_stats_release(&cur);
    hq_stats_release(NULL);
}

static void
test_admin_dead_letter_json_shows_a_non_utf8_body_as_null(void **state)
{
    struct hq_dead_letter d;
    char id[] = "0-1", key[] = "a:b", cust[] = "a", err[] = "boom", wh[] = "";
    char good[] = "{\"x\":\"\xc3\xa9\"}", bad[] = "\xff\xfe";
    json_error_t jerr;
    json_t *o;
    char *js;

    (void)state;
    memset(&d, 0, sizeof(d));
    d.id = id;
    d.key = key;
    d.customer = cust;
    d.error = err;
    d.webhook_id = wh;
    d.seq = 3;
    d.body = good;
    d.body_len = strlen(good);
    js = hq_dead_letter_json(&d);
    o = json_loads(js, 0, &jerr);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "body")), good);
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 3);
    json_decref(o);
    free(js);
    d.body = bad;
    d.body_len = 2;
    js = hq_dead_letter_json(&d);
    o = json_loads(js, 0, &jerr);
    assert_non_null(o);
    assert_true(json_is_null(json_object_get(o, "body")));
    json_decref(o);
    free(js);
}

static void
test_admin_release_functions_accept_null_and_empty(void **state)
{
    struct hq_dead_letters l = {0};
    struct hq_key_list k = {0};
    struct hq_peek p = {0};
    struct hq_dead_letter d = {0};

    (void)state;
    hq_dead_letters_release(&l);
    hq_dead_letters_release(NULL);
    hq_key_list_release(&k);
    hq_key_list_release(NULL);
    hq_peek_release(&p);
    hq_peek_release(NULL);
    hq_dead_letter_release(&d);
    hq_dead_letter_release(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admin_job_id_names_its_shard),
        cmocka_unit_test(test_admin_keys_must_be_customer_colon_code),
        cmocka_unit_test(test_admin_state_names_round_trip),
        cmocka_unit_test(test_admin_stats_json_has_totals_shards_counters_rates_and_top_keys),
        cmocka_unit_test(test_admin_dead_letter_json_shows_a_non_utf8_body_as_null),
        cmocka_unit_test(test_admin_release_functions_accept_null_and_empty),
    };
    return cmocka_run_group_tests_name("admin", tests, NULL, NULL);
}
