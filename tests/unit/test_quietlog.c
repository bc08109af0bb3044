/*
 * Unit tests for the rate limit of Redis failure lines (quietlog.c), on a
 * clock the test drives: the first failure of a subject is logged, the
 * next ones within HQ_QUIETLOG_EVERY_MS are counted, not logged, and the
 * next line says how many; a shard's success after failures is reported
 * once, with the time since its first failure and the count; subjects are
 * independent; a full table reuses a node's entry, never a failing shard's.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "common_int.h"
#include "quietlog_int.h"

static void
test_quietlog_logs_the_first_failure_then_one_line_per_interval(void **state)
{
    struct hq__quietlog q;
    unsigned long quiet = 99;
    int64_t t;

    (void)state;
    assert_int_equal(hq__quietlog_init(&q), HQ_OK);
    assert_int_equal(hq__quietlog_fail(&q, "shard 3", 1, 1000, &quiet), 1);
    assert_int_equal(quiet, 0);
    for (t = 1010; t < 1000 + HQ_QUIETLOG_EVERY_MS; t += 10)
        assert_int_equal(hq__quietlog_fail(&q, "shard 3", 1, t, &quiet), 0);
    /* 499 kept quiet; the next line, at the interval, says so. */
    assert_int_equal(hq__quietlog_fail(&q, "shard 3", 1, 1000 + HQ_QUIETLOG_EVERY_MS,
                                       &quiet), 1);
    assert_int_equal(quiet, 499);
    assert_int_equal(hq__quietlog_fail(&q, "shard 3", 1, 6001, &quiet), 0);
    hq__quietlog_release(&q);
}

static void
test_quietlog_reports_a_shard_back_once_with_its_count(void **state)
{
    struct hq__quietlog q;
    unsigned long quiet, n = 0;
    int64_t down = 0;

    (void)state;
    assert_int_equal(hq__quietlog_init(&q), HQ_OK);
    /* Nothing failed: a success costs no lock and says nothing. */
    assert_false(hq__quietlog_failing(&q));
    assert_int_equal(hq__quietlog_ok(&q, "shard 3", 500, &down, &n), 0);
    for (int i = 0; i < 118; i++)
        hq__quietlog_fail(&q, "shard 3", 1, 1000 + i * 30, &quiet);
    assert_true(hq__quietlog_failing(&q));
    /* Another shard's success is not this one's. */
    assert_int_equal(hq__quietlog_ok(&q, "shard 4", 5000, &down, &n), 0);
    assert_int_equal(hq__quietlog_ok(&q, "shard 3", 5200, &down, &n), 1);
    assert_int_equal(down, 4200);
    assert_int_equal(n, 118);
    assert_false(hq__quietlog_failing(&q));
    assert_int_equal(hq__quietlog_ok(&q, "shard 3", 5300, &down, &n), 0);
    /* A new outage is logged at once again. */
    assert_int_equal(hq__quietlog_fail(&q, "shard 3", 1, 5400, &quiet), 1);
    hq__quietlog_release(&q);
}

static void
test_quietlog_subjects_are_independent_and_nodes_never_come_back(void **state)
{
    struct hq__quietlog q;
    unsigned long quiet, n;
    int64_t down;

    (void)state;
    assert_int_equal(hq__quietlog_init(&q), HQ_OK);
    assert_int_equal(hq__quietlog_fail(&q, "shard 1", 1, 0, &quiet), 1);
    assert_int_equal(hq__quietlog_fail(&q, "shard 2", 1, 10, &quiet), 1);
    assert_int_equal(hq__quietlog_fail(&q, "cannot connect to node a", 0, 20, &quiet), 1);
    assert_int_equal(hq__quietlog_fail(&q, "cannot connect to node a", 0, 30, &quiet), 0);
    assert_int_equal(hq__quietlog_fail(&q, "shard 1", 1, 40, &quiet), 0);
    /* A node's message is not a shard: a success does not report it. */
    assert_int_equal(hq__quietlog_ok(&q, "cannot connect to node a", 50, &down, &n), 0);
    assert_int_equal(hq__quietlog_ok(&q, "shard 2", 60, &down, &n), 1);
    assert_int_equal(n, 1);
    assert_true(hq__quietlog_failing(&q)); /* shard 1 still */
    hq__quietlog_release(&q);
}

static void
test_quietlog_full_table_keeps_failing_shards(void **state)
{
    struct hq__quietlog q;
    unsigned long quiet, n;
    int64_t down;
    char name[32];

    (void)state;
    assert_int_equal(hq__quietlog_init(&q), HQ_OK);
    assert_int_equal(hq__quietlog_fail(&q, "node x", 0, 0, &quiet), 1);
    for (int i = 0; i < HQ_QUIETLOG_SUBJECTS - 1; i++) {
        snprintf(name, sizeof(name), "shard %d", i);
        assert_int_equal(hq__quietlog_fail(&q, name, 1, 10, &quiet), 1);
    }
    /* Full: a new subject takes the node's entry (x is forgotten)... */
    assert_int_equal(hq__quietlog_fail(&q, "node y", 0, 20, &quiet), 1);
    assert_int_equal(hq__quietlog_fail(&q, "node y", 0, 21, &quiet), 0);
    /* ...and a new shard too, the last entry that is not a failing shard. */
    assert_int_equal(hq__quietlog_fail(&q, "shard 99", 1, 25, &quiet), 1);
    /* Only failing shards left: every failure of another subject is said. */
    assert_int_equal(hq__quietlog_fail(&q, "node z", 0, 30, &quiet), 1);
    assert_int_equal(hq__quietlog_fail(&q, "node z", 0, 40, &quiet), 1);
    assert_int_equal(hq__quietlog_fail(&q, "shard 99", 1, 45, &quiet), 0);
    /* Every shard is still remembered, and comes back. */
    assert_int_equal(hq__quietlog_ok(&q, "shard 0", 50, &down, &n), 1);
    assert_int_equal(down, 40);
    hq__quietlog_release(&q);
}

static void
test_quietlog_release_accepts_a_zeroed_struct(void **state)
{
    static struct hq__quietlog q;

    (void)state;
    hq__quietlog_release(&q);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quietlog_logs_the_first_failure_then_one_line_per_interval),
        cmocka_unit_test(test_quietlog_reports_a_shard_back_once_with_its_count),
        cmocka_unit_test(test_quietlog_subjects_are_independent_and_nodes_never_come_back),
        cmocka_unit_test(test_quietlog_full_table_keeps_failing_shards),
        cmocka_unit_test(test_quietlog_release_accepts_a_zeroed_struct),
    };
    return cmocka_run_group_tests_name("quietlog", tests, NULL, NULL);
}
