/*
 * Unit tests for src/lib/metrics.c: which bucket an observation lands in
 * (each bound is inclusive, as Prometheus's `le` says), the cumulative
 * _bucket lines with +Inf equal to _count, sums in seconds, label quoting,
 * and a document large enough to make the buffer grow.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_int.h"

static uint64_t
count_in(const struct hq__hist *h, size_t i)
{
    return atomic_load(&h->bucket[i]);
}

static void
test_each_bound_is_inclusive_and_beyond_the_last_is_inf(void **state)
{
    struct hq__hist h;

    (void)state;
    memset(&h, 0, sizeof(h));
    hq__hist_observe(&h, -5);   /* a clock step back counts as 0 */
    hq__hist_observe(&h, 0);
    hq__hist_observe(&h, 500);  /* le=0.0005 */
    hq__hist_observe(&h, 501);  /* le=0.001 */
    hq__hist_observe(&h, 1000); /* le=0.001 */
    hq__hist_observe(&h, 3600000000LL);     /* le=3600, the last bound */
    hq__hist_observe(&h, 3600000001LL);     /* +Inf */
    assert_int_equal(count_in(&h, 0), 3);
    assert_int_equal(count_in(&h, 1), 2);
    assert_int_equal(count_in(&h, HQ_HIST_NBOUNDS - 1), 1);
    assert_int_equal(count_in(&h, HQ_HIST_NBOUNDS), 1);
    assert_int_equal(atomic_load(&h.sum_us),
                     500 + 501 + 1000 + 3600000000ULL + 3600000001ULL);
    for (size_t i = 1; i < HQ_HIST_NBOUNDS; i++)
        assert_true(hq__hist_bounds_us[i - 1] < hq__hist_bounds_us[i]);
}

static void
test_hist_lines_are_cumulative_and_end_in_inf_equal_to_count(void **state)
{
    struct hq__hist a, b;
    struct hq__hist_snap s;
    struct hq__prom p = {0};

    (void)state;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    hq__hist_observe(&a, 700);      /* le=0.001 */
    hq__hist_observe(&b, 2000);     /* le=0.0025 */
    hq__hist_observe(&b, 20000000); /* le=30 */
    memset(&s, 0, sizeof(s));
    hq__hist_add(&s, &a);
    hq__hist_add(&s, &b);
    hq__prom_hist(&p, "x_seconds", "k=\"v\"", &s);
    assert_false(p.oom);
    assert_non_null(strstr(p.buf, "x_seconds_bucket{k=\"v\",le=\"0.0005\"} 0\n"));
    assert_non_null(strstr(p.buf, "x_seconds_bucket{k=\"v\",le=\"0.001\"} 1\n"));
    assert_non_null(strstr(p.buf, "x_seconds_bucket{k=\"v\",le=\"0.0025\"} 2\n"));
    assert_non_null(strstr(p.buf, "x_seconds_bucket{k=\"v\",le=\"10\"} 2\n"));
    assert_non_null(strstr(p.buf, "x_seconds_bucket{k=\"v\",le=\"30\"} 3\n"));
    assert_non_null(strstr(p.buf, "x_seconds_bucket{k=\"v\",le=\"3600\"} 3\n"));
    assert_non_null(strstr(p.buf, "x_seconds_bucket{k=\"v\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(p.buf, "x_seconds_sum{k=\"v\"} 20.002700\n"));
    assert_non_null(strstr(p.buf, "x_seconds_count{k=\"v\"} 3\n"));
    hq__prom_release(&p);

    hq__prom_hist(&p, "y", NULL, &s);
    assert_non_null(strstr(p.buf, "y_bucket{le=\"+Inf\"} 3\ny_sum 20.002700\ny_count 3\n"));
    hq__prom_release(&p);
}

static void
test_families_samples_and_labels(void **state)
{
    struct hq__prom p = {0};
    char q[16];

    (void)state;
    hq__prom_family(&p, "a_total", "counter", "What a counts.");
    hq__prom_sample(&p, "a_total", "r=\"x\"", 12345678901.0);
    hq__prom_sample(&p, "b", NULL, 0.5);
    assert_string_equal(p.buf, "# HELP a_total What a counts.\n"
                               "# TYPE a_total counter\n"
                               "a_total{r=\"x\"} 12345678901\n"
                               "b 0.5\n");
    hq__prom_release(&p);
    assert_null(p.buf);

    assert_string_equal(hq__prom_label("a\"b\\c\nd", q, sizeof(q)),
                        "\"a\\\"b\\\\c\\nd\"");
    /* Cut to fit, never mid-escape, always closed. */
    assert_string_equal(hq__prom_label("\"\"\"\"\"\"\"\"\"\"", q, 9), "\"\\\"\\\"\"");
    assert_string_equal(hq__prom_label("", q, 3), "\"\"");
}

static void
test_the_buffer_grows_for_large_documents(void **state)
{
    struct hq__prom p = {0};
    char labels[32];

    (void)state;
    for (int i = 0; i < 5000; i++) {
        snprintf(labels, sizeof(labels), "shard=\"%d\"", i);
        hq__prom_sample(&p, "hookq_queue_jobs", labels, i);
    }
    assert_false(p.oom);
    assert_int_equal(p.len, strlen(p.buf));
    assert_non_null(strstr(p.buf, "hookq_queue_jobs{shard=\"0\"} 0\n"));
    assert_non_null(strstr(p.buf, "hookq_queue_jobs{shard=\"4999\"} 4999\n"));
    hq__prom_release(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_bound_is_inclusive_and_beyond_the_last_is_inf),
        cmocka_unit_test(test_hist_lines_are_cumulative_and_end_in_inf_equal_to_count),
        cmocka_unit_test(test_families_samples_and_labels),
        cmocka_unit_test(test_the_buffer_grows_for_large_documents),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
