/*
 * Unit tests for the daemon's log (src/hookq/log.c, linked from the
 * binary's own library hookq_app): line shapes in text and JSON,
 * escaping, levels, fields as JSON values (numbers, any bytes as valid
 * UTF-8), long lines cut into valid JSON, and that secrets are masked.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

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
    hk_log_kv(2, "intake listening", "addr", "127.0.0.1:8080", "note",
              "a \"b\"\n", "skipped", NULL, NULL);
}

static void
emit_levels(void)
{
    hk_log(3, "debug %d", 1);
    hk_log(2, "info %d", 2);
    hk_log(0, "error %d", 3);
}

static void
test_log_text_line_has_time_level_msg_fields(void **state)
{
    const char *s;

    (void)state;
    hk_log_init(HQ_LOG_TEXT, 2);
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
    hk_log_init(HQ_LOG_JSON, 2);
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
    hk_log_init(HQ_LOG_TEXT, 2);
    s = capture(emit_levels);
    assert_null(strstr(s, "debug 1"));
    assert_non_null(strstr(s, "info  info 2\n"));
    assert_non_null(strstr(s, "error error 3\n"));
    hk_log_init(HQ_LOG_TEXT, 3);
    s = capture(emit_levels);
    assert_non_null(strstr(s, "debug debug 1\n"));
}

static void
emit_long(void)
{
    char big[10000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    hk_log_kv(2, "long", "v", big, NULL);
}

/* Parse one JSON log line with jansson (which refuses invalid UTF-8). */
static json_t *
parse_line(const char *s)
{
    json_error_t e;
    json_t *v = json_loads(s, JSON_REJECT_DUPLICATES, &e);

    if (v == NULL)
        print_error("not JSON (%s): %s\n", e.text, s);
    assert_non_null(v);
    assert_true(json_is_object(v));
    return v;
}

static void
test_log_long_lines_are_cut_but_stay_one_line(void **state)
{
    const char *s;
    json_t *v;

    (void)state;
    hk_log_init(HQ_LOG_JSON, 2);
    s = capture(emit_long);
    assert_true(strlen(s) < HQ_LOGLINE_MAX);
    assert_true(strlen(s) > HQ_LOGLINE_MAX - 64);
    assert_int_equal(strchr(s, '\n') - s + 1, (long)strlen(s));
    v = parse_line(s);
    assert_true(json_is_true(json_object_get(v, "truncated")));
    assert_int_equal(json_string_value(json_object_get(v, "v"))[0], 'x');
    json_decref(v);
    hk_log_init(HQ_LOG_TEXT, 2);
    s = capture(emit_long);
    assert_true(strlen(s) < HQ_LOGLINE_MAX);
    assert_int_equal(strchr(s, '\n') - s + 1, (long)strlen(s));
}

/* A long value of 3-byte characters and escapes: the cut splits neither. */
static void
emit_long_multibyte(void)
{
    char big[6000];
    size_t n = 0;

    while (n + 4 < sizeof(big)) {
        memcpy(big + n, n % 2 ? "\xe2\x82\xac" : "\x01", n % 2 ? 3 : 1);
        n += n % 2 ? 3 : 1;
    }
    big[n] = '\0';
    hk_log_kv(2, "long", "key", big, "customer", "c", NULL);
}

static void
test_log_cut_never_splits_a_character_or_escape(void **state)
{
    const char *s;
    json_t *v;

    (void)state;
    hk_log_init(HQ_LOG_JSON, 2);
    s = capture(emit_long_multibyte);
    v = parse_line(s);
    assert_true(json_is_true(json_object_get(v, "truncated")));
    json_decref(v);
}

/* What a webhook may carry in its customer: any bytes. */
static void
emit_hostile(void)
{
    const char *f[] = {"key", "bad\xff\xfe\xc3:\x1b[31mred\x7f\n:code",
                       "customer", "\xed\xa0\x80 surrogate \xf4\x90\x80\x80",
                       "job", "0-7", "attempt", "3", "ms", "12", "pid", "4242",
                       "code", "post-create", "outcome", "retry",
                       "error", "caf\xc3\xa9 \"quoted\" \\ tab\t", NULL};

    hk_log_fields(1, "job will retry", f);
}

static void
test_log_json_is_valid_utf8_whatever_a_webhook_held(void **state)
{
    const char *s;
    json_t *v;

    (void)state;
    hk_log_init(HQ_LOG_JSON, 2);
    s = capture(emit_hostile);
    assert_int_equal(strchr(s, '\n') - s + 1, (long)strlen(s));
    v = parse_line(s); /* jansson refuses invalid UTF-8 */
    assert_string_equal(json_string_value(json_object_get(v, "msg")), "job will retry");
    assert_string_equal(json_string_value(json_object_get(v, "key")),
                        "bad\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd:\x1b[31mred\x7f\n:code");
    assert_string_equal(json_string_value(json_object_get(v, "customer")),
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd surrogate "
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(json_string_value(json_object_get(v, "error")),
                        "caf\xc3\xa9 \"quoted\" \\ tab\t");
    /* Numbers are numbers; a code or job id stays a string. */
    assert_true(json_is_integer(json_object_get(v, "pid")));
    assert_int_equal(json_integer_value(json_object_get(v, "pid")), 4242);
    assert_int_equal(json_integer_value(json_object_get(v, "attempt")), 3);
    assert_int_equal(json_integer_value(json_object_get(v, "ms")), 12);
    assert_string_equal(json_string_value(json_object_get(v, "job")), "0-7");
    assert_string_equal(json_string_value(json_object_get(v, "code")), "post-create");
    assert_string_equal(json_string_value(json_object_get(v, "outcome")), "retry");
    assert_string_equal(json_string_value(json_object_get(v, "level")), "warn");
    /* No raw control byte reaches the line. */
    for (const char *p = s; *p != '\n'; p++)
        assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
    json_decref(v);
}

static void
test_log_text_shows_bad_bytes_escaped_on_one_line(void **state)
{
    const char *s;

    (void)state;
    hk_log_init(HQ_LOG_TEXT, 2);
    s = capture(emit_hostile);
    assert_int_equal(strchr(s, '\n') - s + 1, (long)strlen(s));
    assert_non_null(strstr(s, " warn  job will retry key=\"bad\\xff\\xfe\\xc3:"
                              "\\u001b[31mred\\u007f\\n:code\" "));
    assert_non_null(strstr(s, " job=0-7 attempt=3 ms=12 pid=4242 code=post-create "
                              "outcome=retry error=\"caf\xc3\xa9 \\\"quoted\\\" "
                              "\\\\ tab\\t\"\n"));
}

static void
emit_numbers(void)
{
    hk_log_kv(2, "numbers", "pid", "12", "ms", "-3", "percent", "41.5",
              "attempt", "2x", "status", "", "key", "12", NULL);
}

static void
test_log_json_numeric_fields_only_when_numbers(void **state)
{
    const char *s;

    (void)state;
    hk_log_init(HQ_LOG_JSON, 2);
    s = capture(emit_numbers);
    assert_non_null(strstr(s, "\"pid\":12,\"ms\":-3,\"percent\":41.5,"
                              "\"attempt\":\"2x\",\"status\":\"\",\"key\":\"12\"}"));
    json_decref(parse_line(s));
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
        assert_string_equal(hk_log_mask_url(urls[i].in, buf, sizeof(buf)),
                            urls[i].out);
    assert_string_equal(hk_log_mask("whsec_abc", buf, sizeof(buf)),
                        "<redacted 9 chars>");
    assert_string_equal(hk_log_mask("", buf, sizeof(buf)), "(none)");
    assert_string_equal(hk_log_mask(NULL, buf, sizeof(buf)), "(none)");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_text_line_has_time_level_msg_fields),
        cmocka_unit_test(test_log_json_line_is_one_escaped_object),
        cmocka_unit_test(test_log_levels_above_the_threshold_are_dropped),
        cmocka_unit_test(test_log_long_lines_are_cut_but_stay_one_line),
        cmocka_unit_test(test_log_cut_never_splits_a_character_or_escape),
        cmocka_unit_test(test_log_json_is_valid_utf8_whatever_a_webhook_held),
        cmocka_unit_test(test_log_text_shows_bad_bytes_escaped_on_one_line),
        cmocka_unit_test(test_log_json_numeric_fields_only_when_numbers),
        cmocka_unit_test(test_log_masks_never_show_secrets),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
