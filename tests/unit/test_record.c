/*
 * Unit tests for record.c: the job record as enqueue.lua writes it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "record_int.h"

static void
test_record_splits_five_fields_and_keeps_newlines_in_the_body(void **state)
{
    static const char rec[] = "0-17\n5\n1700000000123\nwh-1\n{\"a\":\n1}";
    struct hq__record r;

    (void)state;
    assert_int_equal(hq__record_parse(rec, sizeof(rec) - 1, &r), HQ_OK);
    assert_int_equal(r.id_len, 4);
    assert_memory_equal(r.id, "0-17", 4);
    assert_int_equal(r.seq, 5);
    assert_int_equal(r.received_at_ms, 1700000000123LL);
    assert_int_equal(r.webhook_id_len, 4);
    assert_memory_equal(r.webhook_id, "wh-1", 4);
    assert_int_equal(r.body_len, 8);
    assert_memory_equal(r.body, "{\"a\":\n1}", 8);
}

static void
test_record_allows_empty_webhook_id_and_body(void **state)
{
    static const char rec[] = "1-2\n1\n5\n\n";
    struct hq__record r;

    (void)state;
    assert_int_equal(hq__record_parse(rec, sizeof(rec) - 1, &r), HQ_OK);
    assert_int_equal(r.webhook_id_len, 0);
    assert_int_equal(r.body_len, 0);
}

static void
test_record_rejects_malformed_records(void **state)
{
    static const char *const bad[] = {
        "",                       /* nothing */
        "0-1\n1\n2",              /* too few fields */
        "0-1\n1\n2\nw",           /* no body separator */
        "\n1\n2\nw\nbody",        /* empty id */
        "0-1\nx\n2\nw\nbody",     /* seq not a number */
        "0-1\n1\n2x\nw\nbody",    /* received_at not a number */
        "0-1\n\n2\nw\nbody",      /* empty seq */
    };
    struct hq__record r;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(hq__record_parse(bad[i], strlen(bad[i]), &r), HQ_EPROTO);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_splits_five_fields_and_keeps_newlines_in_the_body),
        cmocka_unit_test(test_record_allows_empty_webhook_id_and_body),
        cmocka_unit_test(test_record_rejects_malformed_records),
    };
    return cmocka_run_group_tests_name("record", tests, NULL, NULL);
}
