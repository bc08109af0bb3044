/*
 * Unit tests for breaker.c's view of a target (breaker_int.h): which gates
 * go on without a call to Redis, which peek in the background, which ask
 * and wait, and what each answer of breaker.lua teaches the view. All on a
 * clock the test sets; no Redis.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "breaker_int.h"

#define T0 1000000 /* a monotonic ms far from 0 */

static struct hq__breaker_answer
answer(int verdict, int64_t n)
{
    struct hq__breaker_answer a = {0};

    a.verdict = verdict;
    a.n = n;
    return a;
}

/* What hq__breaker_peek() records when it sends one. */
static void
peek_sent(struct hq__breaker_view *v, int64_t now)
{
    v->peeking = 1;
    v->asked_ms = now;
}

static void
learn(struct hq__breaker_view *v, const char *op, int verdict, int64_t n,
      int64_t now)
{
    struct hq__breaker_answer a = answer(verdict, n);

    hq__breaker_view_learn(v, op, &a, now);
}

/* A target never answered for: every gate asks Redis and waits. */
static void
test_breaker_view_unknown_asks(void **state)
{
    struct hq__breaker_view v = {0};

    (void)state;
    assert_int_equal(hq__breaker_view_plan(&v, T0), HQ_BREAKER_PLAN_CHECK);
    assert_int_equal(hq__breaker_view_plan(&v, 0), HQ_BREAKER_PLAN_CHECK);
    /* A failed call teaches nothing. */
    learn(&v, "check", HQ_BREAKER_ERROR, 0, T0);
    assert_int_equal(hq__breaker_view_plan(&v, T0), HQ_BREAKER_PLAN_CHECK);
}

/*
 * Up with no failure: no call for a second; then one peek in the
 * background while every gate goes on; none other while it is in flight,
 * and, if it fails, none before a second after it was sent.
 */
static void
test_breaker_view_clean_goes_then_revalidates_once_a_second(void **state)
{
    struct hq__breaker_view v = {0};

    (void)state;
    learn(&v, "check", HQ_BREAKER_GO, 0, T0);
    assert_int_equal(v.state, HQ_BREAKER_VIEW_CLEAN);
    assert_int_equal(hq__breaker_view_plan(&v, T0), HQ_BREAKER_PLAN_GO);
    assert_int_equal(hq__breaker_view_plan(&v, T0 + HQ_BREAKER_VIEW_FRESH_MS - 1),
                     HQ_BREAKER_PLAN_GO);
    /* Stale: this gate goes and peeks. */
    assert_int_equal(hq__breaker_view_plan(&v, T0 + HQ_BREAKER_VIEW_FRESH_MS),
                     HQ_BREAKER_PLAN_GO_PEEK);
    peek_sent(&v, T0 + 1000);
    /* Others go on with the stale view, and send no second peek, even
     * long after (Redis slow or gone: the watchdog ends it). */
    assert_int_equal(hq__breaker_view_plan(&v, T0 + 1001), HQ_BREAKER_PLAN_GO);
    assert_int_equal(hq__breaker_view_plan(&v, T0 + 9000), HQ_BREAKER_PLAN_GO);
    /* The peek failed at T0 + 1500: the view stays up; the next peek a
     * second after the last was sent. */
    learn(&v, "peek", HQ_BREAKER_ERROR, 0, T0 + 1500);
    assert_int_equal(v.peeking, 0);
    assert_int_equal(v.state, HQ_BREAKER_VIEW_CLEAN);
    assert_int_equal(hq__breaker_view_plan(&v, T0 + 1999), HQ_BREAKER_PLAN_GO);
    assert_int_equal(hq__breaker_view_plan(&v, T0 + 2000), HQ_BREAKER_PLAN_GO_PEEK);
    /* A peek that says up: fresh again for a second from its answer. */
    peek_sent(&v, T0 + 2000);
    learn(&v, "peek", HQ_BREAKER_GO, 0, T0 + 2100);
    assert_int_equal(v.peeking, 0);
    assert_int_equal(hq__breaker_view_plan(&v, T0 + 3099), HQ_BREAKER_PLAN_GO);
    assert_int_equal(hq__breaker_view_plan(&v, T0 + 3100), HQ_BREAKER_PLAN_GO_PEEK);
}

/* Every answer but "up, no failure" makes every gate ask Redis again. */
static void
test_breaker_view_not_clean_asks_every_time(void **state)
{
    static const struct {
        const char *op;
        int verdict;
        int64_t n;
    } dirty[] = {
        {"check", HQ_BREAKER_GO, 1},    /* up, failures seen */
        {"check", HQ_BREAKER_PROBE, 5}, /* down, this job probes */
        {"check", HQ_BREAKER_WAIT, 0},  /* down */
        {"peek", HQ_BREAKER_GO, 2},     /* another process's failures */
        {"peek", HQ_BREAKER_WAIT, 0},   /* another process tripped it */
        {"fail", HQ_BREAKER_GO, 1},     /* a failure (counted or not) */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(dirty) / sizeof(dirty[0]); i++) {
        struct hq__breaker_view v = {0};

        learn(&v, "check", HQ_BREAKER_GO, 0, T0);
        assert_int_equal(hq__breaker_view_plan(&v, T0 + 1), HQ_BREAKER_PLAN_GO);
        learn(&v, dirty[i].op, dirty[i].verdict, dirty[i].n, T0 + 2);
        assert_int_equal(v.state, HQ_BREAKER_VIEW_DIRTY);
        /* Fresh or not, peeked or not: ask. */
        assert_int_equal(hq__breaker_view_plan(&v, T0 + 3), HQ_BREAKER_PLAN_CHECK);
        assert_int_equal(hq__breaker_view_plan(&v, T0 + 5000), HQ_BREAKER_PLAN_CHECK);
        /* A failed call leaves it dirty. */
        learn(&v, "check", HQ_BREAKER_ERROR, 0, T0 + 4);
        assert_int_equal(hq__breaker_view_plan(&v, T0 + 5), HQ_BREAKER_PLAN_CHECK);
        /* The target answered (ok): up and clean, whether or not the
         * report changed anything. */
        learn(&v, "ok", HQ_BREAKER_GO, 0, T0 + 6);
        assert_int_equal(v.state, HQ_BREAKER_VIEW_CLEAN);
        assert_int_equal(hq__breaker_view_plan(&v, T0 + 7), HQ_BREAKER_PLAN_GO);
        /* So does a check that finds it clean again. */
        learn(&v, "fail", HQ_BREAKER_GO, 0, T0 + 8);
        assert_int_equal(hq__breaker_view_plan(&v, T0 + 9), HQ_BREAKER_PLAN_CHECK);
        learn(&v, "check", HQ_BREAKER_GO, 0, T0 + 10);
        assert_int_equal(hq__breaker_view_plan(&v, T0 + 11), HQ_BREAKER_PLAN_GO);
    }
}

/* A failed call never turns an up view down, nor a down view up. */
static void
test_breaker_view_failed_calls_change_nothing(void **state)
{
    static const char *const ops[] = {"check", "peek", "ok", "fail"};

    (void)state;
    for (size_t i = 0; i < 4; i++) {
        struct hq__breaker_view up = {0}, down = {0};

        learn(&up, "check", HQ_BREAKER_GO, 0, T0);
        learn(&down, "check", HQ_BREAKER_WAIT, 0, T0);
        learn(&up, ops[i], HQ_BREAKER_ERROR, 0, T0 + 10);
        learn(&down, ops[i], HQ_BREAKER_ERROR, 0, T0 + 10);
        assert_int_equal(up.state, HQ_BREAKER_VIEW_CLEAN);
        assert_true(up.seen_ms == T0);
        assert_int_equal(hq__breaker_view_plan(&up, T0 + 20), HQ_BREAKER_PLAN_GO);
        assert_int_equal(down.state, HQ_BREAKER_VIEW_DIRTY);
        assert_int_equal(hq__breaker_view_plan(&down, T0 + 20), HQ_BREAKER_PLAN_CHECK);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_breaker_view_unknown_asks),
        cmocka_unit_test(test_breaker_view_clean_goes_then_revalidates_once_a_second),
        cmocka_unit_test(test_breaker_view_not_clean_asks_every_time),
        cmocka_unit_test(test_breaker_view_failed_calls_change_nothing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
