/*
 * Unit tests for enqueue.c: the enqueue call's arguments and the reading
 * of its reply, shared by the client and the intake's pusher.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "enqueue_int.h"

static void
test_enqueue_limits_default_to_none_and_a_day(void **state)
{
    struct hq__enqueue_limits l;
    struct hq_push_limits set = {50, 1000};
    const char *argv[2];
    size_t argvlen[2];

    (void)state;
    hq__enqueue_limits_init(&l, NULL);
    hq__enqueue_argv_limits(&l, argv, argvlen);
    assert_string_equal(argv[0], "0");
    assert_string_equal(argv[1], "86400000");
    assert_int_equal(argvlen[1], 8);
    hq__enqueue_limits_init(&l, &set);
    assert_string_equal(l.max_depth, "50");
    assert_string_equal(l.dedup_ttl, "1000");
}

static void
test_enqueue_argv_is_five_strings_per_job_in_order(void **state)
{
    struct hq_push a = {"acme", 4, "order.paid", 10, "{}", 2, "wh_1", 4};
    struct hq_push b = {"zed", 3, "x", 1, NULL, 0, NULL, 0};
    const char *argv[HQ_ENQUEUE_ARGC(2)];
    size_t argvlen[HQ_ENQUEUE_ARGC(2)];
    unsigned char dig[2][HQ_ENQUEUE_DIGEST];
    /* The first 16 bytes of SHA-256("wh_1"). */
    static const char wh_1[] =
        "\xf1\xe3\x8b\x99\xf9\xd4\x2c\x8b\x0c\x46\x63\xed\xde\x20\xea\x48";

    (void)state;
    assert_int_equal(HQ_ENQUEUE_ARGC(2), 12);
    hq__enqueue_argv_job(0, &a, dig[0], argv, argvlen);
    hq__enqueue_argv_job(1, &b, dig[1], argv, argvlen);
    assert_memory_equal(argv[2], "acme", 4);
    assert_memory_equal(argv[3], "order.paid", 10);
    assert_memory_equal(argv[4], "{}", 2);
    assert_memory_equal(argv[5], "wh_1", 4);
    assert_int_equal(argvlen[6], HQ_ENQUEUE_DIGEST);
    assert_memory_equal(argv[6], wh_1, HQ_ENQUEUE_DIGEST);
    assert_memory_equal(argv[7], "zed", 3);
    assert_int_equal(argvlen[9], 0);  /* no body: "" */
    assert_int_equal(argvlen[10], 0); /* no webhook id: "" */
    assert_int_equal(argvlen[11], 0); /* and no digest */
}

static const struct {
    struct hq_push p;
    int rc;
    const char *msg;
} check_rows[] = {
    {{"c", 1, "e", 1, NULL, 0, NULL, 0}, HQ_OK, ""},
    {{"", 0, "e", 1, NULL, 0, NULL, 0}, HQ_EINVAL, "push: empty customer"},
    {{"c", 1, NULL, 0, NULL, 0, NULL, 0}, HQ_EINVAL, "push: empty code"},
    {{"c", 1, "a:b", 3, NULL, 0, NULL, 0}, HQ_EINVAL, "push: code 'a:b' contains ':'"},
    {{"c", 1, "e", 1, NULL, 0, "w\n", 2}, HQ_EINVAL, "push: webhook id contains a newline"},
};

static void
test_enqueue_check_names_what_is_wrong(void **state)
{
    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(check_rows); i++) {
        struct hq__err err = {""};

        assert_int_equal(hq__enqueue_check(&check_rows[i].p, &err), check_rows[i].rc);
        assert_string_equal(err.msg, check_rows[i].msg);
    }
}

/* A reply of two jobs, built by hand: {0, "3-7", 1, 1, "3-2", 0}. */
static redisReply e[6], arr;
static redisReply *ep[6];

static void
build_reply(void)
{
    static const struct {
        int type;
        long long i;
        const char *s;
    } v[6] = {{REDIS_REPLY_INTEGER, 0, NULL}, {REDIS_REPLY_STRING, 0, "3-7"},
              {REDIS_REPLY_INTEGER, 1, NULL}, {REDIS_REPLY_INTEGER, 1, NULL},
              {REDIS_REPLY_STRING, 0, "3-2"}, {REDIS_REPLY_INTEGER, 0, NULL}};

    for (int i = 0; i < 6; i++) {
        memset(&e[i], 0, sizeof(e[i]));
        e[i].type = v[i].type;
        e[i].integer = v[i].i;
        e[i].str = (char *)v[i].s;
        e[i].len = v[i].s ? strlen(v[i].s) : 0;
        ep[i] = &e[i];
    }
    memset(&arr, 0, sizeof(arr));
    arr.type = REDIS_REPLY_ARRAY;
    arr.elements = 6;
    arr.element = ep;
}

static void
test_enqueue_reply_gives_status_id_and_seq_per_job(void **state)
{
    struct hq_push_result res;

    (void)state;
    build_reply();
    assert_int_equal(hq__enqueue_reply_check(&arr, 2), HQ_OK);
    assert_int_equal(hq__enqueue_reply_job(&arr, 2, 0, &res), HQ_OK);
    assert_int_equal(res.status, HQ_PUSH_STORED);
    assert_string_equal(res.id, "3-7");
    assert_int_equal(res.seq, 1);
    assert_int_equal(hq__enqueue_reply_job(&arr, 2, 1, &res), HQ_OK);
    assert_int_equal(res.status, HQ_PUSH_DUPLICATE);
    assert_string_equal(res.id, "3-2");
}

static void
test_enqueue_reply_of_another_shape_is_refused(void **state)
{
    struct hq_push_result res;
    redisReply err = {.type = REDIS_REPLY_ERROR, .str = "ERR x", .len = 5};

    (void)state;
    build_reply();
    assert_int_equal(hq__enqueue_reply_check(&arr, 3), HQ_EPROTO); /* count */
    assert_int_equal(hq__enqueue_reply_check(&err, 1), HQ_EPROTO);
    assert_int_equal(hq__enqueue_reply_check(NULL, 1), HQ_EPROTO);
    assert_int_equal(hq__enqueue_reply_job(&arr, 2, 2, &res), HQ_EPROTO);
    e[3].integer = 3; /* not an hq_push_status */
    assert_int_equal(hq__enqueue_reply_check(&arr, 2), HQ_EPROTO);
    e[3].integer = 1;
    e[1].type = REDIS_REPLY_INTEGER; /* id not a string */
    assert_int_equal(hq__enqueue_reply_check(&arr, 2), HQ_EPROTO);
    assert_int_equal(hq__enqueue_reply_job(&arr, 2, 0, &res), HQ_EPROTO);
    assert_string_equal(res.id, "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enqueue_limits_default_to_none_and_a_day),
        cmocka_unit_test(test_enqueue_argv_is_five_strings_per_job_in_order),
        cmocka_unit_test(test_enqueue_check_names_what_is_wrong),
        cmocka_unit_test(test_enqueue_reply_gives_status_id_and_seq_per_job),
        cmocka_unit_test(test_enqueue_reply_of_another_shape_is_refused),
    };
    return cmocka_run_group_tests_name("enqueue", tests, NULL, NULL);
}
