/*
 * Unit tests for the daemon's log (src/hookq/log.c, linked from the
 * binary's own library hookq_app): line shapes in text and JSON,
 * escaping, levels, and that secrets are masked.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config_int.h"
#include "log.h"

/* Run `fn` with stderr captured; returns what it wrote (static buffer). */
static const char *
capture(void (*fn)(void))
{
    static char out[8192];
    int fds[2], saved;
    ssize_t n;

    assert_int_equal(pipe(fds), 0);
    saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    n = read(fds[0], out, sizeof(out) - 1);
    close(fds[0]);
    out[n > 0 ? n : 0] = '\0';
    return out;
}

static void
emit_kv(void)
{
    hq_log_kv(2, "intake listening", "addr", "127.0.0.1:8080", "note",
              "a \"b\"\n", "skipped", NULL, NULL);
}

static void
emit_levels(void)
{
    hq_log(3, "debug %d", 1);
    hq_log(2, "info %d", 2);
    hq_log(0, "error %d", 3);
}

static void
test_log_text_line_has_time_level_msg_fields(void **state)
{
    const char *s;

    (void)state;
    hq_log_init(HQ_LOG_TEXT, 2);
    s = capture(emit_kv);
    /* 2026-11-26T23:59:01.123Z info  intake listening addr=... */
    assert_int_equal(
        strlen(s), 24 + 1 + 5 + 1 +
                       strlen("intake listening "
                              "addr=127.0.0.1:8080 note=\"a \\\"b\\\"\\n\"\n"));
    assert_int_equal(s[10], 'T');
    assert_int_equal(s[23], 'Z');
    assert_string_equal(s + 24, " info  intake listening addr=127.0.0.1:8080 "
                                "note=\"a \\\"b\\\"\\n\"\n");
}

static void
test_log_json_line_is_one_escaped_object(void **state)
{
    const char *s;

    (void)state;
    hq_log_init(HQ_LOG_JSON, 2);
    s = capture(emit_kv);
    assert_memory_equal(s, "{\"ts\":\"", 7);
    assert_non_null(strstr(
        s, "\",\"level\":\"info\",\"msg\":\"intake listening\","
           "\"addr\":\"127.0.0.1:8080\",\"note\":\"a \\\"b\\\"\\n\"}\n"));
    assert_null(strstr(s, "skipped"));
    assert_int_equal(strchr(s, '\n') - s + 1, (long)strlen(s));
}

static void
test_log_levels_above_the_threshold_are_dropped(void **state)
{
    const char *s;

    (void)state;
    hq_log_init(HQ_LOG_TEXT, 2);
    s = capture(emit_levels);
    assert_null(strstr(s, "debug 1"));
    assert_non_null(strstr(s, "info  info 2\n"));
    assert_non_null(strstr(s, "error error 3\n"));
    hq_log_init(HQ_LOG_TEXT, 3);
    s = capture(emit_levels);
    assert_non_null(strstr(s, "debug debug 1\n"));
}

static void
emit_long(void)
{
    char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    hq_log_kv(2, "long", "v", big, NULL);
}

static void
test_log_long_lines_are_cut_but_stay_one_line(void **state)
{
    const char *s;

    (void)state;
    hq_log_init(HQ_LOG_JSON, 2);
    s = capture(emit_long);
    assert_int_equal(strlen(s), HQ_LOGLINE_MAX - 1);
    assert_int_equal(s[strlen(s) - 1], '\n');
    assert_int_equal(s[strlen(s) - 2], '}');
}

static const struct {
    const char *in;
    const char *out;
} urls[] = {
    {"redis://:hunter2@10.0.0.1:6379/0", "redis://:***@10.0.0.1:6379/0"},
    {"redis://user:hunter2@h:1", "redis://user:***@h:1"},
    {"redis://hunter2@h:1", "redis://***@h:1"},
    {"redis://h:6379/0", "redis://h:6379/0"},
    {"unix:///tmp/r.sock", "unix:///tmp/r.sock"},
    {"http://h/a@b", "http://h/a@b"},
};

static void
test_log_masks_never_show_secrets(void **state)
{
    char buf[128];

    (void)state;
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
        assert_string_equal(hq_log_mask_url(urls[i].in, buf, sizeof(buf)),
                            urls[i].out);
    assert_string_equal(hq_log_mask("whsec_abc", buf, sizeof(buf)),
                        "<redacted 9 chars>");
    assert_string_equal(hq_log_mask("", buf, sizeof(buf)), "(none)");
    assert_string_equal(hq_log_mask(NULL, buf, sizeof(buf)), "(none)");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_text_line_has_time_level_msg_fields),
        cmocka_unit_test(test_log_json_line_is_one_escaped_object),
        cmocka_unit_test(test_log_levels_above_the_threshold_are_dropped),
        cmocka_unit_test(test_log_long_lines_are_cut_but_stay_one_line),
        cmocka_unit_test(test_log_masks_never_show_secrets),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
