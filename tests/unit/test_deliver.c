/*
 * Unit tests for deliver.c: parsing `deliver` lines, what an HTTP status
 * means for a delivery, and the log target (one line per job, appended).
 * http and exec run end to end in tests/integration/test_process.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deliver_int.h"

static const struct {
    const char *spec;
    int rc;
    const char *error;
} specs[] = {
    {"http://127.0.0.1:8000/hooks", HQ_OK, NULL},
    {"https://example.com/h", HQ_OK, NULL},
    {"exec:/bin/true", HQ_OK, NULL},
    {"exec:/usr/bin/env  A=1   /bin/true", HQ_OK, NULL},
    {"log", HQ_OK, NULL},
    {"exec:", HQ_EINVAL,
     "exec needs an absolute path, as in 'exec:/usr/local/bin/handle'"},
    {"exec:bin/true", HQ_EINVAL,
     "exec needs an absolute path, as in 'exec:/usr/local/bin/handle'"},
    {"ftp://x", HQ_EINVAL,
     "unknown delivery 'ftp://x' (use http://..., exec:/path or log[:FILE])"},
    {"log:", HQ_EINVAL,
     "unknown delivery 'log:' (use http://..., exec:/path or log[:FILE])"},
};

static void
test_deliver_parses_targets_and_names_what_is_wrong(void **state)
{
    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(specs); i++) {
        struct hq__deliver *d = NULL;
        struct hq__err err = {{0}};

        assert_int_equal(hq__deliver_parse(specs[i].spec, &d, &err),
                         specs[i].rc);
        if (specs[i].rc == HQ_OK) {
            assert_non_null(d);
        } else {
            assert_null(d);
            assert_string_equal(err.msg, specs[i].error);
        }
        hq__deliver_free(d);
    }
}

static void
test_deliver_http_status_means_done_permanent_or_retry(void **state)
{
    (void)state;
    assert_int_equal(hq__deliver_http_outcome(200), HQ_OUTCOME_DONE);
    assert_int_equal(hq__deliver_http_outcome(204), HQ_OUTCOME_DONE);
    assert_int_equal(hq__deliver_http_outcome(400), HQ_OUTCOME_FAIL);
    assert_int_equal(hq__deliver_http_outcome(404), HQ_OUTCOME_FAIL);
    assert_int_equal(hq__deliver_http_outcome(422), HQ_OUTCOME_FAIL);
    assert_int_equal(hq__deliver_http_outcome(408), HQ_OUTCOME_RETRY);
    assert_int_equal(hq__deliver_http_outcome(429), HQ_OUTCOME_RETRY);
    assert_int_equal(hq__deliver_http_outcome(500), HQ_OUTCOME_RETRY);
    assert_int_equal(hq__deliver_http_outcome(503), HQ_OUTCOME_RETRY);
    assert_int_equal(hq__deliver_http_outcome(302), HQ_OUTCOME_RETRY);
    assert_int_equal(hq__deliver_http_outcome(0), HQ_OUTCOME_RETRY);
}

static int outcome_seen = -1;

static void
on_done(int outcome, int target_failed, const char *error, void *arg)
{
    (void)target_failed;
    (void)error;
    (void)arg;
    outcome_seen = outcome;
}

static void
test_deliver_log_file_gets_one_line_per_job_appended(void **state)
{
    char path[] = "/tmp/hq-test-deliver-XXXXXX", spec[64], buf[256];
    struct hq__delivery_job job = {"0-1", "c:k", 1, 1, "{\"a\":1}", 7, 0, NULL,
                                   -1};
    struct hq__deliver *d = NULL;
    struct hq__delivery *call = (struct hq__delivery *)&job;
    struct hq__err err;
    FILE *f;
    int fd;
    size_t n;

    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    snprintf(spec, sizeof(spec), "log:%s", path);
    assert_int_equal(hq__deliver_parse(spec, &d, &err), HQ_OK);
    assert_int_equal(hq__deliver_log_open(d, &job.log_fd, &err), HQ_OK);
    assert_true(job.log_fd > 2);
    for (int i = 0; i < 2; i++) {
        outcome_seen = -1;
        assert_int_equal(hq__deliver_start(d, NULL, NULL, &job, on_done, NULL,
                                           &call, &err),
                         HQ_OK);
        /* Done before returning, and no handle to cancel. */
        assert_int_equal(outcome_seen, HQ_OUTCOME_DONE);
        assert_null(call);
    }
    close(job.log_fd);
    hq__deliver_free(d);
    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(path);
    assert_string_equal(buf, "{\"a\":1}\n{\"a\":1}\n");
}

/*
 * Parsing does no I/O (config.c parses every event's line, `hookq check`
 * included): log:FILE is opened by hq__deliver_log_open(), which names
 * the file it cannot open; log is stdout, other targets have no descriptor.
 */
static void
test_deliver_parse_opens_nothing_log_open_opens_the_file(void **state)
{
    struct hq__deliver *d = NULL;
    struct hq__err err;
    int fd = 7;

    (void)state;
    assert_int_equal(hq__deliver_parse("log:/nonexistent/dir/f", &d, &err),
                     HQ_OK);
    assert_int_equal(access("/nonexistent/dir/f", F_OK), -1);
    assert_int_equal(hq__deliver_log_open(d, &fd, &err), HQ_EIO);
    assert_int_equal(fd, -1);
    assert_string_equal(err.msg,
                        "cannot open '/nonexistent/dir/f': No such file or "
                        "directory");
    hq__deliver_free(d);
    assert_int_equal(hq__deliver_parse("log", &d, &err), HQ_OK);
    assert_int_equal(hq__deliver_log_open(d, &fd, &err), HQ_OK);
    assert_int_equal(fd, 1);
    hq__deliver_free(d);
    assert_int_equal(hq__deliver_parse("exec:/bin/true", &d, &err), HQ_OK);
    assert_int_equal(hq__deliver_log_open(d, &fd, &err), HQ_OK);
    assert_int_equal(fd, -1);
    hq__deliver_free(d);
}

/* The circuit breaker's target names: one per origin, or per program. */
static void
test_deliver_target_is_the_origin_or_the_program(void **state)
{
    static const struct {
        const char *spec, *target; /* NULL: no breaker */
    } rows[] = {
        {"http://127.0.0.1:8000/hooks/a", "http://127.0.0.1:8000"},
        {"http://127.0.0.1:8000", "http://127.0.0.1:8000"},
        {"http://Shop.Example.com/x?y=1", "http://shop.example.com:80"},
        {"https://u:p@shop.example.com/x", "https://shop.example.com:443"},
        {"http://[::1]:9000/x", "http://[::1]:9000"},
        {"http://h:8080?q", "http://h:8080"},
        {"exec:/usr/bin/handle --fast", "exec:/usr/bin/handle"},
        {"log", NULL},
        {"log:/dev/null", NULL},
    };
    char buf[600];
    struct hq__err err;

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct hq__deliver *d = NULL;

        assert_int_equal(hq__deliver_parse(rows[i].spec, &d, &err), HQ_OK);
        if (rows[i].target) {
            assert_int_equal(hq__deliver_target(d, buf, sizeof(buf)), 1);
            assert_string_equal(buf, rows[i].target);
        } else {
            assert_int_equal(hq__deliver_target(d, buf, sizeof(buf)), 0);
        }
        hq__deliver_free(d);
    }
    assert_int_equal(hq__url_origin("ftp://x", buf, sizeof(buf)), HQ_EINVAL);
    assert_int_equal(hq__url_origin("http:///x", buf, sizeof(buf)), HQ_EINVAL);
    assert_int_equal(hq__url_origin("http://long-host-name", buf, 10),
                     HQ_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deliver_parses_targets_and_names_what_is_wrong),
        cmocka_unit_test(test_deliver_http_status_means_done_permanent_or_retry),
        cmocka_unit_test(test_deliver_log_file_gets_one_line_per_job_appended),
        cmocka_unit_test(test_deliver_target_is_the_origin_or_the_program),
        cmocka_unit_test(test_deliver_parse_opens_nothing_log_open_opens_the_file),
    };
    return cmocka_run_group_tests_name("deliver", tests, NULL, NULL);
}
