/*
 * The parts of the worker that need no Redis: reading the job records it
 * claims (hq__record_parse of record.c, shared with admin.c), and the retry backoff
 * (full jitter within its bounds, no overflow).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "record_int.h"
#include "worker_int.h"

struct record_row {
    const char *rec;
    int ok;
    const char *id, *webhook_id, *body;
    int64_t seq, received_at_ms;
};

static const struct record_row record_rows[] = {
    {"0-1\n1\n1700000000000\n\n{}", 1, "0-1", "", "{}", 1, 1700000000000},
    {"0-7\n42\n5\nwh_1\nline1\nline2\n", 1, "0-7", "wh_1", "line1\nline2\n", 42, 5},
    {"3-9\n2\n0\nw\n", 1, "3-9", "w", "", 2, 0},
    {"", 0, NULL, NULL, NULL, 0, 0},
    {"0-1\n1\n2", 0, NULL, NULL, NULL, 0, 0},          /* no webhook id, no body */
    {"0-1\n1\n2\nwh", 0, NULL, NULL, NULL, 0, 0},      /* no body separator */
    {"\n1\n2\n\nb", 0, NULL, NULL, NULL, 0, 0},         /* empty id */
    {"0-1\nx\n2\n\nb", 0, NULL, NULL, NULL, 0, 0},      /* seq not a number */
    {"0-1\n1\n2x\n\nb", 0, NULL, NULL, NULL, 0, 0},     /* received_at not a number */
    {"0-1\n\n2\n\nb", 0, NULL, NULL, NULL, 0, 0},       /* empty seq */
};

static void
test_worker_record_parse_splits_five_fields_and_rejects_malformed(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(record_rows) / sizeof(record_rows[0]); i++) {
        const struct record_row *row = &record_rows[i];
        struct hq__record r;
        int rc = hq__record_parse(row->rec, strlen(row->rec), &r);

        if (!row->ok) {
            assert_int_equal(rc, HQ_EPROTO);
            continue;
        }
        assert_int_equal(rc, HQ_OK);
        assert_int_equal(r.id_len, strlen(row->id));
        assert_memory_equal(r.id, row->id, r.id_len);
        assert_int_equal(r.webhook_id_len, strlen(row->webhook_id));
        assert_memory_equal(r.webhook_id, row->webhook_id, r.webhook_id_len);
        assert_int_equal(r.body_len, strlen(row->body));
        assert_memory_equal(r.body, row->body, r.body_len);
        assert_true(r.seq == row->seq);
        assert_true(r.received_at_ms == row->received_at_ms);
    }
}

static void
test_worker_record_parse_keeps_binary_bodies(void **state)
{
    static const char rec[] = "0-1\n1\n2\n\n\0\xff\n\0";
    struct hq__record r;

    (void)state;
    assert_int_equal(hq__record_parse(rec, sizeof(rec) - 1, &r), HQ_OK);
    assert_int_equal(r.body_len, 4);
    assert_memory_equal(r.body, "\0\xff\n\0", 4);
}

static void
test_worker_backoff_is_full_jitter_within_bounds(void **state)
{
    static const struct { int attempt; int64_t hi; } rows[] = {
        {1, 1000}, {2, 2000}, {3, 4000}, {4, 8000}, {10, 512000},
        {11, 600000}, {40, 600000}, {1000000, 600000},
    };
    size_t i;
    uint64_t rnd;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int64_t lo_seen = INT64_MAX, hi_seen = 0;
        for (rnd = 0; rnd < 2000000; rnd += 997) {
            int64_t d = hq__backoff_ms(rows[i].attempt, 1000, 600000,
                                       rnd * 0x9e3779b97f4a7c15ull);
            assert_true(d >= 1000 && d <= rows[i].hi);
            if (d < lo_seen)
                lo_seen = d;
            if (d > hi_seen)
                hi_seen = d;
        }
        /* The whole range is used, not just its ends. */
        if (rows[i].hi > 1000)
            assert_true(hi_seen - lo_seen > (rows[i].hi - 1000) * 9 / 10);
        /* The ends themselves. */
        assert_true(hq__backoff_ms(rows[i].attempt, 1000, 600000, 0) == 1000);
        assert_true(hq__backoff_ms(rows[i].attempt, 1000, 600000,
                                   (uint64_t)(rows[i].hi - 1000)) == rows[i].hi);
    }
}

static void
test_worker_backoff_with_equal_or_huge_bounds(void **state)
{
    (void)state;
    assert_true(hq__backoff_ms(5, 200, 200, 12345) == 200);
    assert_true(hq__backoff_ms(3, 500, 100, 7) == 500); /* max < min: min */
    assert_true(hq__backoff_ms(62, 1, INT64_MAX, UINT64_MAX) >= 1);
    assert_true(hq__backoff_ms(100, INT64_MAX / 2, INT64_MAX, 3) >= INT64_MAX / 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_record_parse_splits_five_fields_and_rejects_malformed),
        cmocka_unit_test(test_worker_record_parse_keeps_binary_bodies),
        cmocka_unit_test(test_worker_backoff_is_full_jitter_within_bounds),
        cmocka_unit_test(test_worker_backoff_with_equal_or_huge_bounds),
    };
    return cmocka_run_group_tests_name("worker", tests, NULL, NULL);
}
