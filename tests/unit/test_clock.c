/*
 * Unit tests for clock.c: the one reconnect backoff policy (its bounds per
 * attempt, and jitter that spreads connections which failed together),
 * the jitter source, and the monotonic clock and sleep.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "clock_int.h"

/* Over every `rnd`, attempt n waits between half and all of
 * min(50 ms * 2^n, 1 s), and reaches both ends. */
static void
test_clock_backoff_doubles_to_the_cap_within_its_upper_half(void **state)
{
    static const struct {
        int attempt, lo, hi;
    } rows[] = {
        {-1, 25, 50},  {0, 25, 50},    {1, 50, 100},   {2, 100, 200},
        {3, 200, 400}, {4, 400, 800},  {5, 500, 1000}, {9, 500, 1000},
        {100, 500, 1000}, {1 << 30, 500, 1000},
    };

    (void)state;
    assert_int_equal(HQ_RECONNECT_MIN_MS, 50);
    assert_int_equal(HQ_RECONNECT_MAX_MS, 1000);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int lo = 1 << 30, hi = 0;

        for (uint64_t r = 0; r < 2000; r++) {
            int ms = hq__reconnect_backoff_ms(rows[i].attempt, r * 2654435761u);
            lo = ms < lo ? ms : lo;
            hi = ms > hi ? ms : hi;
        }
        assert_int_equal(lo, rows[i].lo);
        assert_int_equal(hi, rows[i].hi);
        /* The extremes of `rnd` stay in bounds too. */
        assert_in_range(hq__reconnect_backoff_ms(rows[i].attempt, UINT64_MAX),
                        rows[i].lo, rows[i].hi);
    }
}

/*
 * Connections that fail together (a restarted Redis) draw their delays
 * from generators seeded apart, so they come back spread over the window,
 * not in step.
 */
static void
test_clock_backoff_jitter_spreads_connections_over_the_window(void **state)
{
    enum { N = 1000 };
    static int counts[501];
    static int objects[N];
    int lo = 1 << 30, hi = 0, distinct = 0, in_low_fifth = 0, in_high_fifth = 0;

    (void)state;
    for (int i = 0; i < N; i++) {
        uint64_t rng = hq__rng_seed(&objects[i]);
        int ms = hq__reconnect_backoff_ms(9, hq__rng_next(&rng));

        assert_in_range(ms, 500, 1000);
        lo = ms < lo ? ms : lo;
        hi = ms > hi ? ms : hi;
        if (counts[ms - 500]++ == 0)
            distinct++;
        in_low_fifth += ms < 600;
        in_high_fifth += ms > 900;
    }
    /* 1000 draws over 501 values: uniform gives ~430 distinct and ~200 in
     * each fifth; a generator in step would give 1 and 0. */
    assert_true(distinct > 300);
    assert_true(in_low_fifth > 100 && in_high_fifth > 100);
    assert_true(lo < 520 && hi > 980);
}

/* One connection's successive delays vary too, and a seed is never 0
 * (xorshift would stay at 0 for ever). */
static void
test_clock_rng_sequence_varies_and_never_sticks_at_zero(void **state)
{
    int a = 0, b = 0;
    uint64_t s1 = hq__rng_seed(&a), s2 = hq__rng_seed(&b);
    uint64_t prev = 0;
    int changes = 0;

    (void)state;
    assert_true(s1 != 0 && s2 != 0);
    assert_true(s1 != s2);
    for (int i = 0; i < 100; i++) {
        uint64_t v = hq__rng_next(&s1);

        assert_true(s1 != 0);
        changes += v != prev;
        prev = v;
    }
    assert_int_equal(changes, 100);
}

/* The clock never goes back, its units agree, and a sleep lasts at least
 * what was asked (and, on a loaded machine, not absurdly more). */
static void
test_clock_is_monotonic_and_sleep_waits_at_least_the_time(void **state)
{
    int64_t t0_ns = hq__mono_ns(), t0_ms = hq__mono_ms(), prev = t0_ns;

    (void)state;
    assert_true(t0_ns > 0);
    for (int i = 0; i < 10000; i++) {
        int64_t t = hq__mono_ns();

        assert_true(t >= prev);
        prev = t;
    }
    hq__sleep_ms(30);
    assert_true(hq__mono_ns() - t0_ns >= 30 * 1000000LL);
    assert_true(hq__mono_us() - t0_ns / 1000 >= 30 * 1000);
    assert_in_range(hq__mono_ms() - t0_ms, 30, 5000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_backoff_doubles_to_the_cap_within_its_upper_half),
        cmocka_unit_test(test_clock_backoff_jitter_spreads_connections_over_the_window),
        cmocka_unit_test(test_clock_rng_sequence_varies_and_never_sticks_at_zero),
        cmocka_unit_test(test_clock_is_monotonic_and_sleep_waits_at_least_the_time),
    };
    return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
