/*
 * Unit tests for src/lib/utf8.c: which byte sequences are UTF-8 (RFC 3629,
 * from a table) and what the sanitizer makes of the rest.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "utf8_int.h"

static const struct {
    const char *in;
    size_t len;
    size_t want; /* hq__utf8_seq() of the first byte */
} seqs[] = {
    {"a", 1, 1},
    {"\x00", 1, 1},
    {"\x7f", 1, 1},
    {"\xc3\xa9", 2, 2},            /* é */
    {"\xc3", 1, 0},                /* cut */
    {"\xc0\xaf", 2, 0},            /* overlong '/' */
    {"\xc1\xbf", 2, 0},            /* overlong */
    {"\xe2\x82\xac", 3, 3},        /* € */
    {"\xe2\x82", 2, 0},            /* cut */
    {"\xe0\x80\xaf", 3, 0},        /* overlong */
    {"\xed\xa0\x80", 3, 0},        /* surrogate D800 */
    {"\xed\x9f\xbf", 3, 3},        /* U+D7FF */
    {"\xef\xbf\xbd", 3, 3},        /* U+FFFD */
    {"\xf0\x9f\x98\x80", 4, 4},    /* 😀 */
    {"\xf0\x8f\xbf\xbf", 4, 0},    /* overlong */
    {"\xf4\x8f\xbf\xbf", 4, 4},    /* U+10FFFF */
    {"\xf4\x90\x80\x80", 4, 0},    /* above U+10FFFF */
    {"\xf5\x80\x80\x80", 4, 0},
    {"\x80", 1, 0},                /* continuation alone */
    {"\xff", 1, 0},
    {"\xe2\x28\xa1", 3, 0},        /* bad continuation */
};

static void
test_utf8_seq_follows_rfc3629(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        size_t got = hq__utf8_seq((const unsigned char *)seqs[i].in, seqs[i].len);

        if (got != seqs[i].want)
            fail_msg("row %zu: got %zu, want %zu", i, got, seqs[i].want);
    }
}

static void
test_utf8_sanitize_replaces_each_bad_byte_and_keeps_the_rest(void **state)
{
    static const char in[] = "ok \xc3\xa9\xff\xed\xa0\x80 \xf0\x9f\x98\x80\xc3";
    size_t n;
    char *out;

    (void)state;
    out = hq__utf8_sanitize(in, sizeof(in) - 1, &n);
    assert_non_null(out);
    assert_string_equal(out, "ok \xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                             "\xef\xbf\xbd \xf0\x9f\x98\x80\xef\xbf\xbd");
    assert_int_equal(n, strlen(out));
    free(out);
    /* NUL bytes are kept, with the length saying where the text ends. */
    out = hq__utf8_sanitize("a\0b", 3, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "a\0b", 4);
    free(out);
    out = hq__utf8_sanitize("", 0, &n);
    assert_int_equal(n, 0);
    assert_string_equal(out, "");
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_seq_follows_rfc3629),
        cmocka_unit_test(test_utf8_sanitize_replaces_each_bad_byte_and_keeps_the_rest),
    };
    return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
