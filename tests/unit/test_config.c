/*
 * Unit tests for config.c: the unit parsers (tables of inputs and results),
 * the INI loader, environment overrides, and the shape of every error
 * message ("@:LINE: [section] key: what is wrong").
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common_int.h"
#include "config_int.h"
#include "signature_int.h"
#include "template_int.h"

/* ------------------------------------------------------------------------ */
/* Unit parsers.                                                            */

static const struct {
    const char *in;
    int rc;
    int64_t ms;
} durations[] = {
    {"250ms", HQ_OK, 250},
    {"30s", HQ_OK, 30000},
    {"1m", HQ_OK, 60000},
    {"2h", HQ_OK, 7200000},
    {"1d", HQ_OK, 86400000},
    {"0", HQ_OK, 0},
    {"0s", HQ_OK, 0},
    {"10", HQ_EINVAL, 0},
    {"", HQ_EINVAL, 0},
    {"s", HQ_EINVAL, 0},
    {"-1s", HQ_EINVAL, 0},
    {"1.5s", HQ_EINVAL, 0},
    {"1 s", HQ_EINVAL, 0},
    {"3x", HQ_EINVAL, 0},
    {"1sec", HQ_EINVAL, 0},
    {"1m30s", HQ_EINVAL, 0},
    {"99999999999999999999s", HQ_EINVAL, 0},
    {"9223372036854775807d", HQ_EINVAL, 0},
};

static void
test_config_durations_parse_per_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(durations); i++) {
        int64_t ms = -7;
        int rc = hq__parse_duration_ms(durations[i].in, &ms);
        if (rc != durations[i].rc)
            fail_msg("duration '%s': rc %d, want %d", durations[i].in, rc,
                     durations[i].rc);
        if (rc == HQ_OK && ms != durations[i].ms)
            fail_msg("duration '%s': %lld, want %lld", durations[i].in,
                     (long long)ms, (long long)durations[i].ms);
    }
}

static const struct {
    const char *in;
    int rc;
    size_t bytes;
} sizes[] = {
    {"512B", HQ_OK, 512},
    {"16KiB", HQ_OK, 16384},
    {"1MiB", HQ_OK, 1048576},
    {"2GiB", HQ_OK, 2147483648u},
    {"0", HQ_OK, 0},
    {"1024", HQ_EINVAL, 0},
    {"1MB", HQ_EINVAL, 0},
    {"1kib", HQ_EINVAL, 0},
    {"KiB", HQ_EINVAL, 0},
    {"", HQ_EINVAL, 0},
    {"-1B", HQ_EINVAL, 0},
    {"1.5MiB", HQ_EINVAL, 0},
    {"99999999999999999999GiB", HQ_EINVAL, 0},
};

static void
test_config_sizes_parse_per_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(sizes); i++) {
        size_t b = 7;
        int rc = hq__parse_size(sizes[i].in, &b);
        if (rc != sizes[i].rc)
            fail_msg("size '%s': rc %d, want %d", sizes[i].in, rc, sizes[i].rc);
        if (rc == HQ_OK && b != sizes[i].bytes)
            fail_msg("size '%s': %zu, want %zu", sizes[i].in, b,
                     sizes[i].bytes);
    }
}

static const struct {
    const char *in;
    int rc;
    int64_t lo, hi;
} ranges[] = {
    {"1s..10m", HQ_OK, 1000, 600000}, {"250ms..250ms", HQ_OK, 250, 250},
    {"0..1s", HQ_OK, 0, 1000},        {"10m..1s", HQ_EINVAL, 0, 0},
    {"1s", HQ_EINVAL, 0, 0},          {"1s..", HQ_EINVAL, 0, 0},
    {"..1s", HQ_EINVAL, 0, 0},        {"1s...2s", HQ_EINVAL, 0, 0},
    {"1s-10m", HQ_EINVAL, 0, 0},      {"1x..2s", HQ_EINVAL, 0, 0},
};

static void
test_config_ranges_parse_per_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(ranges); i++) {
        int64_t lo = -1, hi = -1;
        int rc = hq__parse_range_ms(ranges[i].in, &lo, &hi);
        if (rc != ranges[i].rc)
            fail_msg("range '%s': rc %d, want %d", ranges[i].in, rc,
                     ranges[i].rc);
        if (rc == HQ_OK && (lo != ranges[i].lo || hi != ranges[i].hi))
            fail_msg("range '%s': %lld..%lld", ranges[i].in, (long long)lo,
                     (long long)hi);
    }
}

static const struct {
    const char *in;
    int rc;
    int calls;
    int64_t window;
} rates[] = {
    {"2/1s", HQ_OK, 2, 1000},  {"100/1m", HQ_OK, 100, 60000},
    {"5/s", HQ_OK, 5, 1000},   {"1/250ms", HQ_OK, 1, 250},
    {"0/1s", HQ_EINVAL, 0, 0}, {"2/0s", HQ_EINVAL, 0, 0},
    {"2", HQ_EINVAL, 0, 0},    {"2/", HQ_EINVAL, 0, 0},
    {"/1s", HQ_EINVAL, 0, 0},  {"2/1", HQ_EINVAL, 0, 0},
    {"x/1s", HQ_EINVAL, 0, 0}, {"2/1sec", HQ_EINVAL, 0, 0},
};

static void
test_config_rates_parse_per_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(rates); i++) {
        int calls = -1;
        int64_t w = -1;
        int rc = hq__parse_rate(rates[i].in, &calls, &w);
        if (rc != rates[i].rc)
            fail_msg("rate '%s': rc %d, want %d", rates[i].in, rc, rates[i].rc);
        if (rc == HQ_OK && (calls != rates[i].calls || w != rates[i].window))
            fail_msg("rate '%s': %d/%lld", rates[i].in, calls, (long long)w);
    }
}

/* ------------------------------------------------------------------------ */
/* Loading files.                                                           */

static char tmpdir[64];

static int
setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/hq-config-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown_dir(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Write `text` to TMP/NAME; return the path (static buffer). */
static const char *
write_file(const char *name, const char *text)
{
    static char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static char *noenv[] = {NULL};

static void
test_config_defaults_match_design(void **state)
{
    struct hq__config *cfg;

    (void)state;
    assert_int_equal(hq__config_defaults(&cfg), HQ_OK);
    assert_null(cfg->path);
    assert_null(cfg->redis.url);
    assert_null(cfg->redis.sentinels.text);
    assert_int_equal(cfg->redis.sentinels.n, 0);
    assert_string_equal(cfg->redis.sentinel_master, "hookq");
    assert_null(cfg->redis.sentinel_user);
    assert_null(cfg->redis.sentinel_password);
    assert_string_equal(cfg->redis.ns, "hookq");
    assert_int_equal(cfg->redis.shards, 1);
    assert_string_equal(cfg->redis.data_dir, "./hookq-data");
    assert_string_equal(cfg->intake.listen.text, "127.0.0.1:8080");
    assert_string_equal(cfg->intake.listen.host, "127.0.0.1");
    assert_int_equal(cfg->intake.listen.port, 8080);
    assert_string_equal(cfg->intake.path, "/webhook");
    assert_int_equal(cfg->intake.customer.from_header, 0);
    assert_string_equal(cfg->intake.customer.name, "/data/customer_id");
    assert_int_equal(cfg->intake.customer.ntok, 2);
    assert_string_equal(cfg->intake.customer.tok[1], "customer_id");
    assert_int_equal(cfg->intake.max_body, 1048576);
    assert_int_equal(cfg->intake.max_header, 16384);
    assert_int_equal(cfg->intake.header_timeout_ms, 10000);
    assert_int_equal(cfg->intake.idle_timeout_ms, 60000);
    assert_int_equal(cfg->intake.max_key_depth, 100000);
    assert_null(cfg->intake.secret);
    assert_int_equal(cfg->intake.dedup_ttl_ms, 86400000);
    assert_string_equal(cfg->admin.listen.text, "127.0.0.1:8081");
    assert_string_equal(cfg->admin.listen.host, "127.0.0.1");
    assert_int_equal(cfg->admin.listen.port, 8081);
    assert_null(cfg->admin.token);
    assert_int_equal(cfg->worker.concurrency, 64);
    assert_int_equal(cfg->worker.threads, 2);
    assert_int_equal(cfg->worker.lease_ms, 30000);
    assert_int_equal(cfg->worker.max_attempts, 12);
    assert_int_equal(cfg->worker.backoff_min_ms, 5000);
    assert_int_equal(cfg->worker.backoff_max_ms, 3600000);
    assert_int_equal(cfg->worker.on_failure, HQ_ON_FAILURE_DEADLETTER);
    assert_int_equal(cfg->worker.shutdown_timeout_ms, 30000);
    assert_string_equal(cfg->api.base_url.url, "http://127.0.0.1:9000");
    assert_string_equal(cfg->api.base_url.origin, "http://127.0.0.1:9000");
    assert_int_equal(cfg->api.rate_calls, 2);
    assert_int_equal(cfg->api.rate_window_ms, 1000);
    assert_int_equal(cfg->api.margin_ms, 25);
    assert_int_equal(cfg->api.endpoint, HQ_ENDPOINT_ROUTE);
    assert_int_equal(cfg->api.timeout_ms, 10000);
    assert_null(cfg->deliver.secret);
    assert_int_equal(cfg->deliver.timeout_ms, 30000);
    assert_int_equal(cfg->deliver.breaker, 5);
    assert_int_equal(cfg->deliver.probe_min_ms, 5000);
    assert_int_equal(cfg->deliver.probe_max_ms, 60000);
    assert_int_equal(cfg->nevents, 0);
    assert_int_equal(cfg->log_format, HQ_LOG_TEXT);
    assert_int_equal(cfg->log_level, 2);
    hq__config_free(cfg);
    hq__config_free(NULL);
}

static const char full_ini[] =
    "; the example of DESIGN 3.2\n"
    "log_format = json\n"
    "log_level = debug\n"
    "[redis]\n"
    "url = redis://127.0.0.1:6379/0   ; or unix:///path\n"
    "sentinels = 10.0.0.1:26379,10.0.0.2:26379\n"
    "sentinel_master = mymaster\n"
    "sentinel_user = hq-sentinel\n"
    "sentinel_password = s3ntinel pw\n"
    "namespace = hq-test\n"
    "shards = 4\n"
    "data_dir = /var/lib/hookq\n"
    "\n"
    "[intake]\n"
    "listen = 0.0.0.0:9090\n"
    "path = /hooks\n"
    "customer = header:X-Customer\n"
    "max_body = 2MiB\n"
    "max_header = 8KiB\n"
    "header_timeout = 5s\n"
    "idle_timeout = 2m\n"
    "max_key_depth = 500\n"
    "secret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
    "dedup_ttl = 1h\n"
    "threads = 3\n"
    "max_connections = 99\n"
    "[admin]\n"
    "listen = off\n"
    "token = s3cret\n"
    "[worker]\n"
    "  concurrency = 16   \n"
    "threads = 1\n"
    "lease = 10s\n"
    "max_attempts = 3\n"
    "backoff = 250ms..1m\n"
    "on_failure = hold\n"
    "shutdown_timeout = 0\n"
    "[api]\n"
    "base_url = https://api.example.com\n"
    "rate = 100/1m\n"
    "margin = 0ms\n"
    "endpoint = url\n"
    "timeout = 3s\n"
    "[event post-create]\n"
    "fetch = GET /posts/{data.post_id}\n"
    "fetch = GET /users/{customer}/codes/{code}\n"
    "deliver = http://127.0.0.1:8000/hooks/post-create\n"
    "on_failure = deadletter\n"
    "[event  user.deleted ]\n"
    "deliver = log\n"
    "secret = whsec_c2VjcmV0LWZvci1kZWxpdmVyaWVz\n"
    "timeout = 5s\n"
    "[deliver]\n"
    "secret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
    "timeout = 20s\n"
    "breaker = 0\n"
    "probe = 1s..30s\n"
    "[event *]\n"
    "deliver = log:/dev/null\n";

static void
test_config_every_key_is_read(void **state)
{
    struct hq__config *cfg;
    char err[4096];
    const char *path = write_file("full.ini", full_ini);
    const struct hq__event_cfg *ev;

    (void)state;
    if (hq__config_load(path, noenv, &cfg, err, sizeof(err)) != HQ_OK)
        fail_msg("load failed:\n%s", err);
    assert_string_equal(cfg->path, path);
    assert_int_equal(cfg->log_format, HQ_LOG_JSON);
    assert_int_equal(cfg->log_level, 3);
    assert_string_equal(cfg->redis.url, "redis://127.0.0.1:6379/0");
    assert_string_equal(cfg->redis.sentinels.text,
                        "10.0.0.1:26379,10.0.0.2:26379");
    assert_int_equal(cfg->redis.sentinels.n, 2);
    assert_string_equal(cfg->redis.sentinel_master, "mymaster");
    /* The url and the sentinels, parsed into the store's address. */
    assert_string_equal(cfg->redis.addr.host, "127.0.0.1");
    assert_int_equal(cfg->redis.addr.port, 6379);
    assert_int_equal(cfg->redis.addr.nsentinels, 2);
    assert_string_equal(cfg->redis.addr.sentinels[1].host, "10.0.0.2");
    assert_int_equal(cfg->redis.addr.sentinels[1].port, 26379);
    assert_string_equal(cfg->redis.addr.sentinel_master, "mymaster");
    /* The Sentinels' own credentials, apart from the url's. */
    assert_string_equal(cfg->redis.sentinel_user, "hq-sentinel");
    assert_string_equal(cfg->redis.sentinel_password, "s3ntinel pw");
    assert_string_equal(cfg->redis.addr.sentinel_user, "hq-sentinel");
    assert_string_equal(cfg->redis.addr.sentinel_password, "s3ntinel pw");
    assert_string_equal(cfg->redis.addr.password, "");
    assert_string_equal(cfg->redis.ns, "hq-test");
    assert_int_equal(cfg->redis.shards, 4);
    assert_string_equal(cfg->redis.data_dir, "/var/lib/hookq");
    assert_string_equal(cfg->intake.listen.text, "0.0.0.0:9090");
    assert_string_equal(cfg->intake.listen.host, "0.0.0.0");
    assert_int_equal(cfg->intake.listen.port, 9090);
    assert_string_equal(cfg->intake.path, "/hooks");
    assert_int_equal(cfg->intake.customer.from_header, 1);
    assert_string_equal(cfg->intake.customer.name, "X-Customer");
    assert_int_equal(cfg->intake.max_body, 2 * 1048576);
    assert_int_equal(cfg->intake.max_header, 8192);
    assert_int_equal(cfg->intake.header_timeout_ms, 5000);
    assert_int_equal(cfg->intake.idle_timeout_ms, 120000);
    assert_int_equal(cfg->intake.max_key_depth, 500);
    /* Secrets are kept decoded: base64 of 24 bytes. */
    assert_non_null(cfg->intake.secret);
    assert_int_equal(cfg->intake.secret->len, 24);
    assert_int_equal(cfg->intake.dedup_ttl_ms, 3600000);
    assert_int_equal(cfg->intake.threads, 3);
    assert_int_equal(cfg->intake.max_connections, 99);
    assert_null(cfg->admin.listen.text);
    assert_string_equal(cfg->admin.token, "s3cret");
    assert_int_equal(cfg->worker.concurrency, 16);
    assert_int_equal(cfg->worker.threads, 1);
    assert_int_equal(cfg->worker.lease_ms, 10000);
    assert_int_equal(cfg->worker.max_attempts, 3);
    assert_int_equal(cfg->worker.backoff_min_ms, 250);
    assert_int_equal(cfg->worker.backoff_max_ms, 60000);
    assert_int_equal(cfg->worker.on_failure, HQ_ON_FAILURE_HOLD);
    assert_int_equal(cfg->worker.shutdown_timeout_ms, 0);
    assert_string_equal(cfg->api.base_url.url, "https://api.example.com");
    assert_string_equal(cfg->api.base_url.origin, "https://api.example.com:443");
    assert_int_equal(cfg->api.rate_calls, 100);
    assert_int_equal(cfg->api.rate_window_ms, 60000);
    assert_int_equal(cfg->api.margin_ms, 0);
    assert_int_equal(cfg->api.endpoint, HQ_ENDPOINT_URL);
    assert_int_equal(cfg->api.timeout_ms, 3000);
    assert_non_null(cfg->deliver.secret);
    assert_memory_equal(cfg->deliver.secret->key, cfg->intake.secret->key, 24);
    assert_int_equal(cfg->deliver.timeout_ms, 20000);
    assert_int_equal(cfg->deliver.breaker, 0);
    assert_int_equal(cfg->deliver.probe_min_ms, 1000);
    assert_int_equal(cfg->deliver.probe_max_ms, 30000);

    assert_int_equal(cfg->nevents, 3);
    ev = hq__config_event(cfg, "post-create", 11);
    assert_non_null(ev);
    assert_int_equal(ev->line, 44);
    assert_int_equal(ev->nfetch, 2);
    /* Fetch lines are kept as templates. */
    assert_string_equal(hq__template_route(ev->fetch[0]), "GET /posts/{}");
    assert_string_equal(hq__template_route(ev->fetch[1]),
                        "GET /users/{}/codes/{}");
    assert_string_equal(ev->deliver, "http://127.0.0.1:8000/hooks/post-create");
    assert_int_equal(ev->on_failure, HQ_ON_FAILURE_DEADLETTER);
    /* Unset: [deliver]'s. */
    assert_null(ev->secret);
    assert_int_equal(ev->timeout_ms, 20000);
    ev = hq__config_event(cfg, "user.deleted", 12);
    assert_non_null(ev);
    assert_int_equal(ev->nfetch, 0);
    assert_string_equal(ev->deliver, "log");
    assert_non_null(ev->secret);
    assert_int_equal(ev->secret->len, strlen("secret-for-deliveries"));
    assert_memory_equal(ev->secret->key, "secret-for-deliveries",
                        ev->secret->len);
    assert_int_equal(ev->timeout_ms, 5000);
    /* Unset: the worker's policy. */
    assert_int_equal(ev->on_failure, HQ_ON_FAILURE_HOLD);
    /* Codes without a section of their own: the catch-all. */
    ev = hq__config_event(cfg, "post", 4);
    assert_non_null(ev);
    assert_string_equal(ev->code, "*");
    assert_string_equal(hq__config_event(cfg, "post-created", 12)->code, "*");
    hq__config_free(cfg);
    /* Without [event *], an unknown code has no section. */
    cfg = NULL;
    assert_int_equal(hq__config_defaults(&cfg), HQ_OK);
    assert_null(hq__config_event(cfg, "post", 4));
    hq__config_free(cfg);
}

/*
 * Each row: a file, and the exact error text load must give (all errors,
 * in order). "@" stands for the path of the file.
 */
static const struct {
    const char *ini;
    const char *want;
} bad_files[] = {
    {"[worker]\nlease = 3x\n",
     "@:2: [worker] lease: invalid duration '3x': unknown unit 'x' "
     "(use ms, s, m, h or d)\n"},
    {"[worker]\nlease = 30\n",
     "@:2: [worker] lease: duration '30' has no unit: write 30ms, 30s, 30m, "
     "30h or 30d\n"},
    {"[worker]\nlease = 10ms\n",
     "@:2: [worker] lease: duration '10ms' is below the minimum of 1000ms\n"},
    {"[worker]\nconcurency = 4\n",
     "@:2: [worker] concurency: unknown key (did you mean 'concurrency'?)\n"},
    {"[worker]\nzzz = 4\n", "@:2: [worker] zzz: unknown key\n"},
    {"[wrker]\nlease = 1s\nfoo = 2\n",
     "@:1: [wrker]: unknown section (expected redis, intake, admin, worker, "
     "api, deliver, event CODE or event *)\n"},
    {"[deliver]\nbreaker = -1\n",
     "@:2: [deliver] breaker: invalid number '-1': expected a whole number "
     "from 0 to 1000000\n"},
    {"[deliver]\nsecret = hunter2\n",
     "@:2: [deliver] secret: invalid secret: expected whsec_ followed by "
     "base64\n"},
    {"[deliver]\nprobe = 1m..5s\n",
     "@:2: [deliver] probe: invalid range '1m..5s': the minimum 1m is "
     "above the maximum 5s\n"},
    {"[event *]\ndeliver = log\ntimeout = soon\nsecret = x\n",
     "@:3: [event *] timeout: invalid duration 'soon': expected a whole "
     "number and a unit (ms, s, m, h or d), e.g. 250ms or 30s\n"
     "@:4: [event *] secret: invalid secret: expected whsec_ followed by "
     "base64\n"},
    {"[event a]\ndeliver = log\ntimeout = 1s\ntimeout = 2s\n",
     "@:4: [event a] timeout: set twice (first on line 3)\n"},
    {"[event a]\ndeliver = log\ntimout = 1s\n",
     "@:3: [event a] timout: unknown key (did you mean 'timeout'?)\n"},
    {"verbose = 1\n", "@:1: verbose: unknown key\n"},
    {"log_level = loud\n",
     "@:1: log_level: invalid value 'loud': expected error, warn, info or "
     "debug\n"},
    {"log_format = xml\n",
     "@:1: log_format: invalid value 'xml': expected text or json\n"},
    {"[worker]\nthreads = 0\n",
     "@:2: [worker] threads: 0 is out of range (1 to 256)\n"},
    {"[worker]\nthreads = two\n",
     "@:2: [worker] threads: invalid number 'two': expected a whole number "
     "from 1 to 256\n"},
    {"[worker]\nbackoff = 10m..1s\n",
     "@:2: [worker] backoff: invalid range '10m..1s': the minimum 10m is "
     "above the maximum 1s\n"},
    {"[worker]\non_failure = retry\n",
     "@:2: [worker] on_failure: invalid value 'retry': expected deadletter "
     "or hold\n"},
    {"[worker]\nlease = 1s\nlease = 2s\n",
     "@:3: [worker] lease: set twice (first on line 2)\n"},
    {"[intake]\nmax_body = 1MB\n",
     "@:2: [intake] max_body: invalid size '1MB': unknown unit 'MB' (use B, "
     "KiB, MiB or GiB)\n"},
    {"[intake]\nlisten = localhost\n",
     "@:2: [intake] listen: invalid address 'localhost': expected "
     "HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080\n"},
    {"[intake]\nlisten = off\n",
     "@:2: [intake] listen: invalid address 'off': expected HOST:PORT, "
     "e.g. 127.0.0.1:8080 or [::1]:8080\n"},
    {"[intake]\nlisten = 1.2.3.4:70000\n",
     "@:2: [intake] listen: invalid address '1.2.3.4:70000': expected "
     "HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080\n"},
    {"[intake]\npath = webhook\n",
     "@:2: [intake] path: invalid path 'webhook': must start with '/'\n"},
    {"[intake]\ncustomer = data.customer\n",
     "@:2: [intake] customer: invalid customer 'data.customer': expected a "
     "JSON pointer such as /data/customer_id, or header:NAME\n"},
    /* Passed `hookq check` but not intake at startup (found by fuzz_config). */
    {"[intake]\ncustomer = /data/a~2\n",
     "@:2: [intake] customer: invalid customer: customer '/data/a~2': '~' "
     "must be followed by '0' or '1' (RFC 6901)\n"},
    {"[intake]\nsecret = whsec_not base64!\n",
     "@:2: [intake] secret: invalid secret: expected whsec_ followed by "
     "base64\n"},
    /* Each of the next ones passed `hookq check` but not intake's own
     * parser at startup (found by fuzz_config). */
    {"[intake]\nsecret = whsec_abc\n",
     "@:2: [intake] secret: invalid secret: expected whsec_ followed by "
     "base64\n"},
    {"[redis]\nurl = http://127.0.0.1:6379\n",
     "@:2: [redis] url: invalid url 'http://127.0.0.1:6379': expected "
     "redis://[[user]:password@]host[:port][,host:port...][/db] or unix:///path\n"},
    /* These passed `hookq check` but not the store's parser at startup
     * (found by fuzz_config). */
    {"[redis]\nurl = unix:///run/redis.sock?db=x\n",
     "@:2: [redis] url: redis url 'unix:///run/redis.sock?db=x': expected "
     "'?db=N' after the path\n"},
    {"[redis]\nurl = redis://h:70000\n",
     "@:2: [redis] url: redis url 'redis://h:70000': bad port\n"},
    {"[redis]\nnamespace = a{b}\n",
     "@:2: [redis] namespace: invalid namespace 'a{b}': use letters, "
     "digits, '_', '-' and '.'\n"},
    {"[api]\nrate = 2 per second\n",
     "@:2: [api] rate: invalid rate '2 per second': expected CALLS/WINDOW "
     "with CALLS from 1 to 1000000, e.g. 2/1s or 100/1m\n"},
    {"[api]\nendpoint = path\n",
     "@:2: [api] endpoint: invalid value 'path': expected route or url\n"},
    {"[api]\nbase_url = ftp://x\n",
     "@:2: [api] base_url: invalid url 'ftp://x': expected "
     "http://host[:port][/path]\n"},
    {"[event a:b]\ndeliver = log\n",
     "@:1: [event a:b]: event code 'a:b' must not contain ':' (keys are "
     "CUSTOMER:CODE)\n"},
    {"[event]\ndeliver = log\n",
     "@:1: [event]: missing event code: write [event CODE]\n"},
    {"[event x]\nfetch = GET /x\n",
     "@:1: [event x] deliver: missing: each event needs deliver = "
     "http://..., exec:/path, log or log:FILE\n"},
    {"[event x]\ndeliver = exec:relative/prog\n",
     "@:2: [event x] deliver: invalid deliver 'exec:relative/prog': exec "
     "needs an absolute path, exec:/path/to/program\n"},
    {"[event x]\ndeliver = mailto:a@b\n",
     "@:2: [event x] deliver: invalid deliver 'mailto:a@b': expected "
     "http://..., exec:/path, log or log:FILE\n"},
    {"[event x]\ndeliver = log:\n",
     "@:2: [event x] deliver: invalid deliver 'log:': log: needs a file "
     "name\n"},
    {"[event x]\ndeliver = log\nfetch = /posts/1\n",
     "@:3: [event x] fetch: invalid fetch '/posts/1': expected METHOD "
     "/path, e.g. GET /posts/{data.post_id}\n"},
    {"[event x]\ndeliver = log\nfetch = get /posts/1\n",
     "@:3: [event x] fetch: invalid fetch 'get /posts/1': expected METHOD "
     "/path, e.g. GET /posts/{data.post_id}\n"},
    {"[event x]\ndeliver = log\nfetch = GET /posts/{data.id\n",
     "@:3: [event x] fetch: unbalanced braces in 'GET /posts/{data.id'\n"},
    /* These two passed `hookq check` but not the template parser at
     * startup (found by fuzz_config). */
    {"[event x]\ndeliver = log\nfetch = GET /p\x01\n",
     "@:3: [event x] fetch: invalid fetch 'GET /p\x01': space or control "
     "character in the path at column 7\n"},
    {"[event x]\ndeliver = log\nfetch = GET /p/{data.{x}\n",
     "@:3: [event x] fetch: invalid fetch 'GET /p/{data.{x}': nested '{' "
     "at column 8\n"},
    {"[event x]\ndeliver = log\nfetch = GET /posts/{token}\n",
     "@:3: [event x] fetch: invalid placeholder '{token}' in 'GET "
     "/posts/{token}': use {data.FIELD}, {customer} or {code}\n"},
    {"[event x]\ndeliver = log\nretries = 3\n",
     "@:3: [event x] retries: unknown key\n"},
    {"[event x]\ndeliver = log\ndelivr = log\n",
     "@:3: [event x] delivr: unknown key (did you mean 'deliver'?)\n"},
    {"[event x]\ndeliver = log\ndeliver = log\n",
     "@:3: [event x] deliver: set twice (first on line 2)\n"},
    {"[event x]\ndeliver = log\non_failure = later\n",
     "@:3: [event x] on_failure: invalid value 'later': expected "
     "deadletter or hold\n"},
    {"[redis]\nsentinels = 10.0.0.1\n",
     "@:2: [redis] sentinels: '10.0.0.1' needs a port (host:port)\n"},
    {"[redis]\nsentinels = 10.0.0.1:26379,:26380\n",
     "@:2: [redis] sentinels: no host in ':26380'\n"},
    {"[redis]\nsentinels = h:26379\nsentinel_master = my master\n",
     "@:3: [redis] sentinel_master: invalid name 'my master': no spaces or "
     "control characters\n"},
    {"[redis]\nsentinel_password = pw\n",
     "@:2: [redis] sentinel_password: set, but [redis] sentinels is not: it "
     "is sent to the Sentinels only (the url's user:password@ is for Redis "
     "itself); set [redis] sentinels or remove it\n"},
    {"[redis]\nurl = redis://:pw@h\nsentinel_user = hq\n",
     "@:3: [redis] sentinel_user: set, but [redis] sentinels is not: it "
     "is sent to the Sentinels only (the url's user:password@ is for Redis "
     "itself); set [redis] sentinels or remove it\n"},
    {"[redis]\nsentinels = h:26379\nsentinel_user = hq\n",
     "@:3: [redis] sentinel_user: needs [redis] sentinel_password (AUTH user "
     "password)\n"},
    {"[redis]\nsentinels = h:26379\nsentinel_user = h q\n",
     "@:3: [redis] sentinel_user: invalid user 'h q': no spaces or control "
     "characters\n"},
    /* The password is never quoted back. */
    {"[redis]\nsentinels = h:26379\nsentinel_password = pw\x01x\n",
     "@:3: [redis] sentinel_password: must not contain control characters\n"},
    {"[redis]\nurl = redis://a:1,b:2\nsentinels = h:26379\n",
     "@:3: [redis] sentinels: cannot go with a url of several hosts (a Redis "
     "Cluster finds its masters itself)\n"},
    {"[redis]\nurl = unix:///r.sock\nsentinels = h:26379\n",
     "@:3: [redis] sentinels: cannot go with a unix:// url: the Sentinels "
     "name a host and port\n"},
    {"[redis]\nurl = redis://u:@h\n",
     "@:2: [redis] url: redis url: user 'u' needs a password "
     "(redis://user:password@host)\n"},
    {"[redis]\nurl = redis://a:1,b:2/3\n",
     "@:2: [redis] url: redis url 'redis://a:1,b:2/3': several hosts mean a "
     "Redis Cluster, which has only database 0\n"},
    {"[redis]\nwait_replicas = 1\n",
     "@:2: [redis] wait_replicas: needs a [redis] url: the embedded Redis of "
     "hookq run has no replicas to wait for\n"},
    {"[redis]\nurl = redis://r:6379\nwait_replicas = 101\n",
     "@:3: [redis] wait_replicas: 101 is out of range (0 to 100)\n"},
    {"[redis]\nurl = redis://r:6379\nwait_timeout = 2m\n",
     "@:3: [redis] wait_timeout: duration '2m' is above the maximum of "
     "60000ms\n"},
    {"[admin]\nlisten = 127.0.0.1:8080\n",
     "@:2: [admin] listen: must differ from [intake] listen (the admin "
     "listener never shares the intake port)\n"},
    {"[worker\nlease = 1s\n",
     "@:1: syntax error: section header without ']'\n"},
    {"[worker] extra\n", "@:1: syntax error: unexpected text after ']'\n"},
    {"[worker]\njust words\n",
     "@:2: syntax error: expected 'key = value' or '[section]'\n"},
    {"[worker]\n= 3\n", "@:2: syntax error: missing key before '='\n"},
    /* Several errors: all of them, in file order. */
    {"[worker]\nlease = 3x\nthreads = 0\n[bogus]\nk = v\n[api]\nrate = 0/1s\n",
     "@:2: [worker] lease: invalid duration '3x': unknown unit 'x' (use ms, "
     "s, m, h or d)\n"
     "@:3: [worker] threads: 0 is out of range (1 to 256)\n"
     "@:4: [bogus]: unknown section (expected redis, intake, admin, worker, "
     "api, deliver, event CODE or event *)\n"
     "@:7: [api] rate: invalid rate '0/1s': expected CALLS/WINDOW with "
     "CALLS from 1 to 1000000, e.g. 2/1s or 100/1m\n"},
};

/* Replace each "@" of `pattern` with `path`. */
static void
expand(const char *pattern, const char *path, char *out, size_t size)
{
    size_t n = 0;

    for (const char *p = pattern; *p && n + 1 < size;) {
        if (*p == '@' && (p == pattern || p[-1] == '\n')) {
            n += (size_t)snprintf(out + n, size - n, "%s", path);
            p++;
        } else {
            out[n++] = *p++;
        }
    }
    out[n < size ? n : size - 1] = '\0';
}

static void
test_config_each_bad_file_gives_its_message(void **state)
{
    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(bad_files); i++) {
        struct hq__config *cfg = (void *)1;
        char err[4096], want[4096];
        const char *path = write_file("bad.ini", bad_files[i].ini);
        int rc = hq__config_load(path, noenv, &cfg, err, sizeof(err));

        expand(bad_files[i].want, path, want, sizeof(want));
        if (rc != HQ_ECONFIG)
            fail_msg("row %zu: rc %d, want HQ_ECONFIG", i, rc);
        assert_null(cfg);
        if (strcmp(err, want) != 0)
            fail_msg("row %zu:\n got: %s\nwant: %s", i, err, want);
    }
}

static void
test_config_missing_file_is_an_io_error(void **state)
{
    struct hq__config *cfg;
    char err[512], want[512], path[128];

    (void)state;
    snprintf(want, sizeof(want),
             "%s/nope.ini: cannot open: No such file or "
             "directory\n",
             tmpdir);
    snprintf(path, sizeof(path), "%s/nope.ini", tmpdir);
    assert_int_equal(hq__config_load(path, noenv, &cfg, err, sizeof(err)),
                     HQ_EIO);
    assert_string_equal(err, want);
}

static void
test_config_env_overrides_file_and_defaults(void **state)
{
    struct hq__config *cfg;
    char err[1024];
    const char *path = write_file("env.ini", "[worker]\nlease = 10s\n");
    char *env[] = {
        "PATH=/bin",
        "HOOKQ_WORKER_LEASE=45s",
        "HOOKQ_REDIS_URL=unix:///tmp/r.sock",
        "HOOKQ_LOG_FORMAT=json",
        "HOOKQ_ADMIN_LISTEN=off",
        "HOOKQ_API_RATE=10/1m",
        "HOOKQ_UNRELATED=1", /* not under a section: ignored */
        NULL,
    };

    (void)state;
    if (hq__config_load(path, env, &cfg, err, sizeof(err)) != HQ_OK)
        fail_msg("%s", err);
    assert_int_equal(cfg->worker.lease_ms, 45000);
    assert_string_equal(cfg->redis.url, "unix:///tmp/r.sock");
    assert_int_equal(cfg->log_format, HQ_LOG_JSON);
    assert_null(cfg->admin.listen.text);
    assert_int_equal(cfg->api.rate_calls, 10);
    assert_int_equal(cfg->api.rate_window_ms, 60000);
    hq__config_free(cfg);
}

static void
test_config_env_errors_name_the_variable(void **state)
{
    struct hq__config *cfg;
    char err[2048];
    char *env[] = {
        "HOOKQ_WORKER_LEASE=soon",
        "HOOKQ_WORKER_CONCURENCY=3",
        "HOOKQ_EVENT_X_DELIVER=log",
        "HOOKQ_REDIS_URL=",
        NULL,
    };

    (void)state;
    assert_int_equal(hq__config_load(NULL, env, &cfg, err, sizeof(err)),
                     HQ_ECONFIG);
    assert_string_equal(
        err, "$HOOKQ_WORKER_LEASE: [worker] lease: invalid duration 'soon': "
             "expected "
             "a whole number and a unit (ms, s, m, h or d), e.g. 250ms or 30s\n"
             "$HOOKQ_WORKER_CONCURENCY: [worker] concurency: unknown key\n"
             "$HOOKQ_EVENT_X_DELIVER: [event] sections cannot be set from the "
             "environment; write them in the file\n");
}

/* [redis] sentinel_password from the environment (kept out of the file):
 * used with the file's sentinels; without any, an error naming the
 * variable and both keys, not the password. */
static void
test_config_sentinel_password_from_env(void **state)
{
    struct hq__config *cfg;
    char err[1024];
    const char *path = write_file("sp.ini", "[redis]\nsentinels = s:26379\n");
    char *env[] = {"HOOKQ_REDIS_SENTINEL_PASSWORD=env-s3cret", NULL};
    char *user_env[] = {"HOOKQ_REDIS_SENTINEL_USER=hq", NULL};

    (void)state;
    if (hq__config_load(path, env, &cfg, err, sizeof(err)) != HQ_OK)
        fail_msg("%s", err);
    assert_string_equal(cfg->redis.addr.sentinel_password, "env-s3cret");
    assert_string_equal(cfg->redis.addr.sentinel_user, "");
    hq__config_free(cfg);

    assert_int_equal(hq__config_load(NULL, env, &cfg, err, sizeof(err)),
                     HQ_ECONFIG);
    assert_null(cfg);
    assert_string_equal(
        err, "$HOOKQ_REDIS_SENTINEL_PASSWORD: [redis] sentinel_password: set, "
             "but [redis] sentinels is not: it is sent to the Sentinels only "
             "(the url's user:password@ is for Redis itself); set [redis] "
             "sentinels or remove it\n");
    assert_null(strstr(err, "env-s3cret"));

    assert_int_equal(hq__config_load(path, user_env, &cfg, err, sizeof(err)),
                     HQ_ECONFIG);
    assert_string_equal(err, "$HOOKQ_REDIS_SENTINEL_USER: [redis] sentinel_user: "
                             "needs [redis] sentinel_password (AUTH user "
                             "password)\n");
}

static void
test_config_empty_env_unsets_optional_string(void **state)
{
    struct hq__config *cfg;
    char err[512];
    const char *path = write_file("u.ini", "[redis]\nurl = redis://h:1\n");
    char *env[] = {"HOOKQ_REDIS_URL=", NULL};

    (void)state;
    assert_int_equal(hq__config_load(path, env, &cfg, err, sizeof(err)), HQ_OK);
    assert_null(cfg->redis.url);
    hq__config_free(cfg);
}

static void
test_config_no_path_reads_hookq_ini_in_cwd(void **state)
{
    struct hq__config *cfg;
    char err[512], old[512];

    (void)state;
    assert_non_null(getcwd(old, sizeof(old)));
    assert_int_equal(chdir(tmpdir), 0);
    unlink("hookq.ini");
    assert_int_equal(hq__config_load(NULL, noenv, &cfg, err, sizeof(err)),
                     HQ_OK);
    if (access(HQ_SYSTEM_CONFIG, F_OK) == 0) {
        /* This host has hookq installed: the system file is next. */
        assert_string_equal(cfg->path, HQ_SYSTEM_CONFIG);
    } else {
        assert_null(cfg->path);
        assert_int_equal(cfg->worker.threads, 2);
    }
    hq__config_free(cfg);
    write_file("hookq.ini", "[worker]\nthreads = 5\n");
    assert_int_equal(hq__config_load(NULL, noenv, &cfg, err, sizeof(err)),
                     HQ_OK);
    assert_string_equal(cfg->path, "hookq.ini");
    assert_int_equal(cfg->worker.threads, 5);
    hq__config_free(cfg);
    unlink("hookq.ini");
    assert_int_equal(chdir(old), 0);
}

static void
test_config_find_takes_env_then_cwd_then_system_file(void **state)
{
    char old[512], sys[128], envvar[160];
    char *env[] = {envvar, NULL};
    char *empty[] = {"HOOKQ_CONFIG=", NULL};
    int from_env = -1;

    (void)state;
    assert_non_null(getcwd(old, sizeof(old)));
    assert_int_equal(chdir(tmpdir), 0);
    unlink("hookq.ini");
    snprintf(sys, sizeof(sys), "%s/system.ini", tmpdir);
    snprintf(envvar, sizeof(envvar), "HOOKQ_CONFIG=%s/missing.ini", tmpdir);
    unlink(sys);

    /* Nothing exists: defaults. */
    assert_null(hq__config_find(noenv, sys, &from_env));
    assert_int_equal(from_env, 0);
    /* The system file, when it exists. */
    write_file("system.ini", "");
    assert_string_equal(hq__config_find(noenv, sys, &from_env), sys);
    /* ./hookq.ini before it. */
    write_file("hookq.ini", "");
    assert_string_equal(hq__config_find(noenv, sys, &from_env), "hookq.ini");
    assert_string_equal(hq__config_find(empty, sys, &from_env), "hookq.ini");
    /* $HOOKQ_CONFIG before both, even when it names no file. */
    assert_string_equal(hq__config_find(env, sys, &from_env), envvar + 13);
    assert_int_equal(from_env, 1);

    unlink("hookq.ini");
    unlink(sys);
    assert_int_equal(chdir(old), 0);
}

static void
test_config_missing_hookq_config_file_is_an_error_naming_it(void **state)
{
    struct hq__config *cfg;
    char err[512], envvar[160], want[300];
    char *env[] = {envvar, NULL};

    (void)state;
    snprintf(envvar, sizeof(envvar), "HOOKQ_CONFIG=%s/none.ini", tmpdir);
    assert_int_equal(hq__config_load(NULL, env, &cfg, err, sizeof(err)),
                     HQ_EIO);
    snprintf(want, sizeof(want),
             "%s/none.ini (from $HOOKQ_CONFIG): cannot open: No such file or "
             "directory\n",
             tmpdir);
    assert_string_equal(err, want);
    /* The file it names is the one loaded. */
    write_file("named.ini", "[worker]\nthreads = 7\n");
    snprintf(envvar, sizeof(envvar), "HOOKQ_CONFIG=%s/named.ini", tmpdir);
    assert_int_equal(hq__config_load(NULL, env, &cfg, err, sizeof(err)), HQ_OK);
    assert_int_equal(cfg->worker.threads, 7);
    assert_string_equal(cfg->path, envvar + 13);
    hq__config_free(cfg);
}

static void
test_config_long_lines_and_comments_are_handled(void **state)
{
    struct hq__config *cfg;
    char err[1024];
    char ini[9000];
    char url[1200];

    (void)state;
    memset(url, 'a', 1000);
    url[1000] = '\0';
    snprintf(ini, sizeof(ini),
             "\xEF\xBB\xBF# hash comment\n"
             "[event long]\n"
             "deliver = http://host/%s ; inline comment\n"
             "\t fetch = GET /x   \n",
             url);
    assert_int_equal(hq__config_load(write_file("long.ini", ini), noenv, &cfg,
                                     err, sizeof(err)),
                     HQ_OK);
    assert_int_equal(strlen(cfg->events[0].deliver),
                     strlen("http://host/") + 1000);
    assert_int_equal(cfg->events[0].nfetch, 1);
    assert_string_equal(hq__template_route(cfg->events[0].fetch[0]), "GET /x");
    hq__config_free(cfg);
}

static void
test_config_many_errors_are_capped_and_counted(void **state)
{
    struct hq__config *cfg;
    static char ini[64 * 300];
    static char err[65536];
    size_t n = 0;

    (void)state;
    n += (size_t)snprintf(ini + n, sizeof(ini) - n, "[worker]\n");
    for (int i = 0; i < 250; i++)
        n += (size_t)snprintf(ini + n, sizeof(ini) - n, "bad%d = 1\n", i);
    assert_int_equal(hq__config_load(write_file("many.ini", ini), noenv, &cfg,
                                     err, sizeof(err)),
                     HQ_ECONFIG);
    assert_non_null(strstr(err, "... and 50 more errors\n"));
    /* A small buffer holds whole lines only. */
    assert_int_equal(
        hq__config_load(write_file("many.ini", ini), noenv, &cfg, err, 100),
        HQ_ECONFIG);
    assert_true(strlen(err) < 100);
    assert_int_equal(err[strlen(err) - 1], '\n');
}

/* A small deterministic PRNG (xorshift), so failures reproduce. */
static uint32_t
rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/*
 * 3000 mutations of a valid file (bytes flipped, deleted, inserted,
 * duplicated lines, truncation): load never crashes (ASan watches), returns
 * HQ_OK or HQ_ECONFIG, and on failure every message line names the file
 * (and a line) or a variable.
 */
/* A NUL byte would cut the line short: "abc" for the secret below. */
static void
test_config_nul_byte_is_an_error_not_a_cut_line(void **state)
{
    static const char ini[] = "[intake]\nsecret = whsec_YWJj\0ZGVm\n";
    struct hq__config *cfg = (void *)1;
    char err[4096], want[4096];
    const char *path = write_file("nul.ini", "");
    FILE *f = fopen(path, "w");

    (void)state;
    assert_non_null(f);
    assert_int_equal(fwrite(ini, 1, sizeof(ini) - 1, f), sizeof(ini) - 1);
    fclose(f);
    assert_int_equal(hq__config_load(path, noenv, &cfg, err, sizeof(err)),
                     HQ_ECONFIG);
    assert_null(cfg);
    expand("@:2: syntax error: a NUL byte in the line\n", path, want,
           sizeof(want));
    assert_string_equal(err, want);
}

static void
test_config_mutated_files_give_errors_not_crashes(void **state)
{
    static const char alphabet[] = "[]=:;#\n \t{}./aZ09\xff\x01\"..";
    uint32_t seed = 0x9e3779b9u;
    static char buf[8192], err[16384];
    size_t base = strlen(full_ini);

    (void)state;
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = base;
        int edits = 1 + (int)(rnd(&seed) % 4);
        struct hq__config *cfg = NULL;
        const char *path;
        int rc;

        memcpy(buf, full_ini, base);
        for (int e = 0; e < edits; e++) {
            size_t at = n ? rnd(&seed) % n : 0;
            switch (rnd(&seed) % 5) {
            case 0: /* replace */
                if (n)
                    buf[at] = alphabet[rnd(&seed) % (sizeof(alphabet) - 1)];
                break;
            case 1: /* delete */
                if (n) {
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
                break;
            case 2: /* insert */
                if (n + 1 < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = alphabet[rnd(&seed) % (sizeof(alphabet) - 1)];
                    n++;
                }
                break;
            case 3: /* truncate */
                n = at;
                break;
            default: /* duplicate the first `at % 200` bytes at the end */
                if (n + at % 200 < sizeof(buf)) {
                    memcpy(buf + n, buf, at % 200);
                    n += at % 200;
                }
                break;
            }
        }
        buf[n] = '\0';
        path = write_file("mut.ini", buf);
        /* Embedded NULs end the text early in fputs; that is fine. */
        rc = hq__config_load(path, noenv, &cfg, err, sizeof(err));
        if (rc == HQ_OK) {
            assert_non_null(cfg);
            hq__config_free(cfg);
            continue;
        }
        if (rc != HQ_ECONFIG)
            fail_msg("iteration %d: rc %d\n%s", iter, rc, buf);
        assert_null(cfg);
        assert_true(err[0] != '\0');
        for (char *line = err; *line;) {
            char *nl = strchr(line, '\n');
            assert_non_null(nl);
            if (strncmp(line, path, strlen(path)) != 0 && line[0] != '$' &&
                strncmp(line, "... and ", 8) != 0)
                fail_msg("iteration %d: message without a place: %.*s", iter,
                         (int)(nl - line), line);
            line = nl + 1;
        }
    }
}

/* The one host:port parser, for [intake] and [admin] listen. */
static const struct {
    const char *in;
    int rc;
    const char *host;
    int port;
} addr_rows[] = {
    {"127.0.0.1:8080", 0, "127.0.0.1", 8080},
    {"[::1]:0", 0, "::1", 0},
    {"localhost:65535", 0, "localhost", 65535},
    {"h:65536", -1, NULL, 0},
    {"h:+80", -1, NULL, 0},
    {"h: 80", -1, NULL, 0},
    {":8080", -1, NULL, 0},
    {"::1:8080", -1, NULL, 0},
    {"[]:80", -1, NULL, 0},
    {"[::1]80", -1, NULL, 0},
    {"a b:80", -1, NULL, 0},
    {"a/b:80", -1, NULL, 0},
    {"localhost", -1, NULL, 0},
};

static void
test_config_addr_split_takes_host_port_and_bracketed_v6(void **state)
{
    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(addr_rows); i++) {
        char host[64] = "";
        int port = -1;
        int rc = hq__addr_split(addr_rows[i].in, host, sizeof(host), &port);

        if (rc != addr_rows[i].rc)
            fail_msg("'%s': %d, want %d", addr_rows[i].in, rc, addr_rows[i].rc);
        if (rc == 0) {
            assert_string_equal(host, addr_rows[i].host);
            assert_int_equal(port, addr_rows[i].port);
        }
    }
    {
        char small[4];
        int port;

        assert_int_equal(hq__addr_split("abcd:1", small, sizeof(small), &port), -1);
    }
}

/* ------------------------------------------------------------------------ */
/* The typed table: each kind of value, as the file and HOOKQ_* give it.    */

/*
 * The typed value of `section` `key` of a loaded config, written as text:
 * what a consumer reads, not the text of the file.
 */
static void
render(const struct hq__config *cfg, const char *section, const char *key,
       char *out, size_t n)
{
    const struct hq__event_cfg *ev = cfg->nevents ? &cfg->events[0] : NULL;
    char k[64];

    snprintf(k, sizeof(k), "%s.%s", section, key);
    if (strcmp(k, "worker.lease") == 0)
        snprintf(out, n, "%lld", (long long)cfg->worker.lease_ms);
    else if (strcmp(k, "worker.shutdown_timeout") == 0)
        snprintf(out, n, "%lld", (long long)cfg->worker.shutdown_timeout_ms);
    else if (strcmp(k, "intake.max_body") == 0)
        snprintf(out, n, "%zu", cfg->intake.max_body);
    else if (strcmp(k, "worker.backoff") == 0)
        snprintf(out, n, "%lld..%lld", (long long)cfg->worker.backoff_min_ms,
                 (long long)cfg->worker.backoff_max_ms);
    else if (strcmp(k, "api.rate") == 0)
        snprintf(out, n, "%d/%lld", cfg->api.rate_calls,
                 (long long)cfg->api.rate_window_ms);
    else if (strcmp(k, "redis.shards") == 0)
        snprintf(out, n, "%u", cfg->redis.shards);
    else if (strcmp(k, "worker.max_attempts") == 0)
        snprintf(out, n, "%d", cfg->worker.max_attempts);
    else if (strcmp(k, "intake.max_key_depth") == 0)
        snprintf(out, n, "%lld", (long long)cfg->intake.max_key_depth);
    else if (strcmp(k, "api.endpoint") == 0)
        snprintf(out, n, "%d", cfg->api.endpoint);
    else if (strcmp(k, "api.base_url") == 0)
        snprintf(out, n, "%s origin %s", cfg->api.base_url.url,
                 cfg->api.base_url.origin);
    else if (strcmp(k, "intake.path") == 0)
        snprintf(out, n, "%s", cfg->intake.path);
    else if (strcmp(k, "admin.token") == 0)
        snprintf(out, n, "%s", cfg->admin.token ? cfg->admin.token : "(unset)");
    else if (strcmp(k, "intake.listen") == 0 || strcmp(k, "admin.listen") == 0) {
        const struct hq__listen_addr *a = section[0] == 'i'
                                              ? &cfg->intake.listen
                                              : &cfg->admin.listen;
        if (a->text == NULL)
            snprintf(out, n, "(off)");
        else
            snprintf(out, n, "host %s port %d", a->host, a->port);
    } else if (strcmp(k, "intake.secret") == 0) {
        if (cfg->intake.secret == NULL)
            snprintf(out, n, "(unset)");
        else
            snprintf(out, n, "%zu bytes: %.*s", cfg->intake.secret->len,
                     (int)cfg->intake.secret->len, cfg->intake.secret->key);
    } else if (strcmp(k, "intake.customer") == 0) {
        const struct hq__customer_spec *c = &cfg->intake.customer;
        size_t len = (size_t)snprintf(out, n, "%s %s:",
                                      c->from_header ? "header" : "pointer",
                                      c->name);
        for (size_t i = 0; i < c->ntok && len < n; i++)
            len += (size_t)snprintf(out + len, n - len, " [%s]", c->tok[i]);
    } else if (strcmp(k, "redis.url") == 0) {
        const struct hq__store_addr *a = &cfg->redis.addr;
        if (a->unix_path[0])
            snprintf(out, n, "unix %s db %d", a->unix_path, a->db);
        else
            snprintf(out, n, "%s:%d db %d user '%s' seeds %u", a->host,
                     a->port, a->db, a->user, a->nseeds);
    } else if (strcmp(k, "redis.sentinels") == 0) {
        const struct hq__hostport_list *l = &cfg->redis.sentinels;
        size_t len = (size_t)snprintf(out, n, "%u:", l->n);
        for (unsigned i = 0; i < l->n && len < n; i++)
            len += (size_t)snprintf(out + len, n - len, " %s %d", l->v[i].host,
                                    l->v[i].port);
    } else if (strcmp(k, "event.fetch") == 0) {
        snprintf(out, n, "%zu: %s %s", ev->nfetch,
                 hq__template_method(ev->fetch[ev->nfetch - 1]),
                 hq__template_route(ev->fetch[ev->nfetch - 1]));
    } else if (strcmp(k, "event.timeout") == 0) {
        snprintf(out, n, "%lld", (long long)ev->timeout_ms);
    } else if (strcmp(k, "event.on_failure") == 0) {
        snprintf(out, n, "%d", ev->on_failure);
    } else {
        fail_msg("render: no rendering of %s", k);
    }
}

/*
 * Each row: a key, a value, and either the typed value it loads as
 * (render()) or the reason of its error (after "[section] key: ").
 * Rows of [worker]... are loaded twice, from a file and from HOOKQ_*, and
 * must give the same either way; "event" rows are in an [event x] section.
 */
static const struct {
    const char *section, *key, *value;
    const char *want; /* the typed value, rendered */
    const char *why;  /* or the error's reason */
} typed_rows[] = {
    /* duration: a whole number and a unit, within the key's bounds */
    {"worker", "lease", "90s", "90000", NULL},
    {"worker", "lease", "2h", "7200000", NULL},
    {"worker", "shutdown_timeout", "0", "0", NULL},
    {"worker", "lease", "999ms", NULL,
     "duration '999ms' is below the minimum of 1000ms"},
    {"worker", "lease", "1.5s", NULL,
     "invalid duration '1.5s': unknown unit '.5s' (use ms, s, m, h or d)"},
    {"worker", "lease", "soon", NULL,
     "invalid duration 'soon': expected a whole number and a unit (ms, s, "
     "m, h or d), e.g. 250ms or 30s"},
    {"worker", "lease", "99999999999999999999s", NULL,
     "duration '99999999999999999999s' is too large"},
    /* size: B KiB MiB GiB, within bounds */
    {"intake", "max_body", "64KiB", "65536", NULL},
    {"intake", "max_body", "1GiB", "1073741824", NULL},
    {"intake", "max_body", "2GiB", NULL,
     "size '2GiB' is out of range (1B to 1073741824B)"},
    {"intake", "max_body", "0", NULL,
     "size '0' is out of range (1B to 1073741824B)"},
    {"intake", "max_body", "4096", NULL,
     "size '4096' has no unit: write 4096B, 4096KiB, 4096MiB or 4096GiB"},
    /* range: MIN..MAX of durations */
    {"worker", "backoff", "1s..10m", "1000..600000", NULL},
    {"worker", "backoff", "0..0", "0..0", NULL},
    {"worker", "backoff", "5s", NULL,
     "invalid range '5s': expected MIN..MAX, e.g. 1s..10m"},
    {"worker", "backoff", "1s..2x", NULL,
     "invalid duration '2x': unknown unit 'x' (use ms, s, m, h or d)"},
    /* rate: CALLS/WINDOW */
    {"api", "rate", "5/s", "5/1000", NULL},
    {"api", "rate", "1000000/1d", "1000000/86400000", NULL},
    {"api", "rate", "1000001/1s", NULL,
     "invalid rate '1000001/1s': expected CALLS/WINDOW with CALLS from 1 to "
     "1000000, e.g. 2/1s or 100/1m"},
    {"api", "rate", "2/0s", NULL,
     "invalid rate '2/0s': the window must be above 0"},
    /* whole numbers: unsigned, int, int64, each with bounds */
    {"redis", "shards", "16", "16", NULL},
    {"redis", "shards", "0", NULL, "0 is out of range (1 to 1024)"},
    {"redis", "shards", "-1", NULL,
     "invalid number '-1': expected a whole number from 1 to 1024"},
    {"worker", "max_attempts", "1000000", "1000000", NULL},
    {"worker", "max_attempts", "1000001", NULL,
     "1000001 is out of range (1 to 1000000)"},
    {"intake", "max_key_depth", "0", "0", NULL},
    {"intake", "max_key_depth", "9223372036854775807", "9223372036854775807",
     NULL},
    {"intake", "max_key_depth", "9223372036854775808", NULL,
     "invalid number '9223372036854775808': expected a whole number from 0 "
     "to 9223372036854775807"},
    /* enum: one of its names, stored as its index */
    {"api", "endpoint", "url", "1", NULL},
    {"api", "endpoint", "URL", NULL,
     "invalid value 'URL': expected route or url"},
    /* strings: checked; optional ones unset when empty */
    {"intake", "path", "/in", "/in", NULL},
    {"intake", "path", "in", NULL, "invalid path 'in': must start with '/'"},
    {"admin", "token", "t0k", "t0k", NULL},
    {"admin", "token", "", "(unset)", NULL},
    /* url: without its trailing '/', and its origin (the breaker's name) */
    {"api", "base_url", "http://API.example:81/v1//",
     "http://API.example:81/v1 origin http://api.example:81", NULL},
    {"api", "base_url", "https://h", "https://h origin https://h:443", NULL},
    {"api", "base_url", "ftp://h", NULL,
     "invalid url 'ftp://h': expected http://host[:port][/path]"},
    {"api", "base_url", "http:///p", NULL,
     "invalid url 'http:///p': expected http://host[:port][/path]"},
    {"api", "base_url", "http://[::1", NULL,
     "invalid url 'http://[::1': expected http://host[:port][/path]"},
    {"api", "base_url", "http://u@/p", NULL,
     "invalid url 'http://u@/p': expected http://host[:port][/path]"},
    /* listen: host and port, brackets dropped; [admin] also takes off */
    {"intake", "listen", "[::1]:0", "host ::1 port 0", NULL},
    {"intake", "listen", "0.0.0.0:65535", "host 0.0.0.0 port 65535", NULL},
    {"admin", "listen", "off", "(off)", NULL},
    {"intake", "listen", "off", NULL,
     "invalid address 'off': expected HOST:PORT, e.g. 127.0.0.1:8080 or "
     "[::1]:8080"},
    {"intake", "listen", "h:65536", NULL,
     "invalid address 'h:65536': expected HOST:PORT, e.g. 127.0.0.1:8080 or "
     "[::1]:8080"},
    /* secret: decoded; empty = unset */
    {"intake", "secret", "whsec_c2VjcmV0LWZvci1kZWxpdmVyaWVz",
     "21 bytes: secret-for-deliveries", NULL},
    {"intake", "secret", "c2VjcmV0LWZvci1kZWxpdmVyaWVz",
     "21 bytes: secret-for-deliveries", NULL},
    {"intake", "secret", "", "(unset)", NULL},
    {"intake", "secret", "whsec_abc", NULL,
     "invalid secret: expected whsec_ followed by base64"},
    /* customer: a JSON pointer split into its tokens, or a header */
    {"intake", "customer", "/data/a~1b/0", "pointer /data/a~1b/0: [data] "
     "[a/b] [0]", NULL},
    {"intake", "customer", "header:X-Customer", "header X-Customer:", NULL},
    {"intake", "customer", "header:", NULL,
     "invalid customer 'header:': expected a JSON pointer such as "
     "/data/customer_id, or header:NAME"},
    /* redis url: the store's address */
    {"redis", "url", "redis://u:pw@h:7000/2", "h:7000 db 2 user 'u' seeds 1",
     NULL},
    {"redis", "url", "redis://a:1,b", "a:1 db 0 user '' seeds 2", NULL},
    {"redis", "url", "unix:///tmp/r.sock?db=3", "unix /tmp/r.sock db 3", NULL},
    {"redis", "url", "redis://h:0", NULL, "redis url 'redis://h:0': bad port"},
    /* host:port lists */
    {"redis", "sentinels", "a:1,b:26379", "2: a 1 b 26379", NULL},
    {"redis", "sentinels", "a", NULL, "'a' needs a port (host:port)"},
    /* [event] keys: the same kinds */
    {"event", "fetch", "POST /p/{data.id}/{code}", "1: POST POST /p/{}/{}",
     NULL},
    {"event", "fetch", "get /p", NULL,
     "invalid fetch 'get /p': expected METHOD /path, e.g. GET "
     "/posts/{data.post_id}"},
    {"event", "timeout", "1ms", "1", NULL},
    {"event", "timeout", "0ms", NULL,
     "duration '0ms' is below the minimum of 1ms"},
    {"event", "on_failure", "hold", "1", NULL},
    {"event", "on_failure", "", NULL,
     "invalid value '': expected deadletter or hold"},
};

static void
test_config_each_kind_loads_its_typed_value_or_says_why(void **state)
{
    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(typed_rows); i++) {
        const char *sec = typed_rows[i].section, *key = typed_rows[i].key;
        int is_event = strcmp(sec, "event") == 0;
        char ini[512], err[1024], want[1024], got[512], var[128];
        char *env[] = {var, NULL};
        struct hq__config *cfg = NULL;
        const char *path;
        int rc, line;

        /* From the file. */
        if (is_event)
            snprintf(ini, sizeof(ini), "[event x]\ndeliver = log\n%s = %s\n",
                     key, typed_rows[i].value);
        else
            snprintf(ini, sizeof(ini), "[%s]\n%s = %s\n", sec, key,
                     typed_rows[i].value);
        line = is_event ? 3 : 2;
        path = write_file("typed.ini", ini);
        rc = hq__config_load(path, noenv, &cfg, err, sizeof(err));
        if (typed_rows[i].why == NULL) {
            if (rc != HQ_OK)
                fail_msg("row %zu (%s = %s): %s", i, key, typed_rows[i].value,
                         err);
            render(cfg, sec, key, got, sizeof(got));
            if (strcmp(got, typed_rows[i].want) != 0)
                fail_msg("row %zu (%s = %s):\n got: %s\nwant: %s", i, key,
                         typed_rows[i].value, got, typed_rows[i].want);
            hq__config_free(cfg);
        } else {
            snprintf(want, sizeof(want), "%s:%d: [%s] %s: %s\n", path, line,
                     is_event ? "event x" : sec, key, typed_rows[i].why);
            if (rc != HQ_ECONFIG || strcmp(err, want) != 0)
                fail_msg("row %zu: rc %d\n got: %s\nwant: %s", i, rc, err,
                         want);
            assert_null(cfg);
        }
        if (is_event)
            continue;

        /* The same value from HOOKQ_SECTION_KEY, through the same path. */
        {
            size_t n = (size_t)snprintf(var, sizeof(var), "HOOKQ_%s_%s=", sec,
                                        key);
            for (size_t j = 0; j < n; j++)
                var[j] = (char)toupper((unsigned char)var[j]);
            snprintf(var + n, sizeof(var) - n, "%s", typed_rows[i].value);
        }
        path = write_file("empty.ini", "");
        rc = hq__config_load(path, env, &cfg, err, sizeof(err));
        if (typed_rows[i].why == NULL) {
            if (rc != HQ_OK)
                fail_msg("row %zu ($%s): %s", i, var, err);
            render(cfg, sec, key, got, sizeof(got));
            if (strcmp(got, typed_rows[i].want) != 0)
                fail_msg("row %zu ($%s):\n got: %s\nwant: %s", i, var, got,
                         typed_rows[i].want);
            hq__config_free(cfg);
        } else {
            *strchr(var, '=') = '\0';
            snprintf(want, sizeof(want), "$%s: [%s] %s: %s\n", var, sec, key,
                     typed_rows[i].why);
            if (rc != HQ_ECONFIG || strcmp(err, want) != 0)
                fail_msg("row %zu: rc %d\n got: %s\nwant: %s", i, rc, err,
                         want);
        }
    }
}

/* A variable replaces the file's typed value (and frees it: ASan). */
static void
test_config_env_replaces_a_typed_value_of_the_file(void **state)
{
    struct hq__config *cfg;
    char err[1024];
    const char *path = write_file(
        "replace.ini", "[intake]\nlisten = 127.0.0.1:1\n"
                       "secret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
                       "customer = header:X-A\n"
                       "[redis]\nurl = redis://a:1\nsentinels = s:1\n");
    char *env[] = {
        "HOOKQ_INTAKE_LISTEN=[::1]:2",
        "HOOKQ_INTAKE_SECRET=whsec_c2VjcmV0LWZvci1kZWxpdmVyaWVz",
        "HOOKQ_INTAKE_CUSTOMER=/c",
        "HOOKQ_REDIS_URL=redis://b:2/1",
        "HOOKQ_REDIS_SENTINELS=t:2,u:3",
        NULL,
    };

    (void)state;
    if (hq__config_load(path, env, &cfg, err, sizeof(err)) != HQ_OK)
        fail_msg("%s", err);
    assert_string_equal(cfg->intake.listen.host, "::1");
    assert_int_equal(cfg->intake.listen.port, 2);
    assert_int_equal(cfg->intake.secret->len, 21);
    assert_int_equal(cfg->intake.customer.from_header, 0);
    assert_string_equal(cfg->intake.customer.name, "/c");
    /* The address: the variable's url, with the variable's sentinels. */
    assert_string_equal(cfg->redis.addr.host, "b");
    assert_int_equal(cfg->redis.addr.db, 1);
    assert_int_equal(cfg->redis.addr.nsentinels, 2);
    assert_string_equal(cfg->redis.addr.sentinels[1].host, "u");
    assert_string_equal(cfg->redis.addr.sentinel_master, "hookq");
    hq__config_free(cfg);
}

/* Sentinels without a url: the built-in address, found through them. */
static void
test_config_sentinels_without_url_give_an_address(void **state)
{
    struct hq__config *cfg;
    char err[1024];
    const char *path = write_file(
        "sent.ini", "[redis]\nsentinels = s:26379\nsentinel_master = m\n");

    (void)state;
    if (hq__config_load(path, noenv, &cfg, err, sizeof(err)) != HQ_OK)
        fail_msg("%s", err);
    assert_null(cfg->redis.url);
    assert_int_equal(cfg->redis.addr.db, 0);
    assert_int_equal(cfg->redis.addr.nsentinels, 1);
    assert_string_equal(cfg->redis.addr.sentinels[0].host, "s");
    assert_string_equal(cfg->redis.addr.sentinel_master, "m");
    hq__config_free(cfg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_durations_parse_per_table),
        cmocka_unit_test(test_config_sizes_parse_per_table),
        cmocka_unit_test(test_config_ranges_parse_per_table),
        cmocka_unit_test(test_config_rates_parse_per_table),
        cmocka_unit_test(test_config_defaults_match_design),
        cmocka_unit_test(test_config_every_key_is_read),
        cmocka_unit_test(test_config_each_bad_file_gives_its_message),
        cmocka_unit_test(test_config_missing_file_is_an_io_error),
        cmocka_unit_test(test_config_env_overrides_file_and_defaults),
        cmocka_unit_test(test_config_env_errors_name_the_variable),
        cmocka_unit_test(test_config_sentinel_password_from_env),
        cmocka_unit_test(test_config_empty_env_unsets_optional_string),
        cmocka_unit_test(test_config_no_path_reads_hookq_ini_in_cwd),
        cmocka_unit_test(test_config_long_lines_and_comments_are_handled),
        cmocka_unit_test(test_config_find_takes_env_then_cwd_then_system_file),
        cmocka_unit_test(
            test_config_missing_hookq_config_file_is_an_error_naming_it),
        cmocka_unit_test(test_config_many_errors_are_capped_and_counted),
        cmocka_unit_test(test_config_nul_byte_is_an_error_not_a_cut_line),
        cmocka_unit_test(test_config_mutated_files_give_errors_not_crashes),
        cmocka_unit_test(test_config_addr_split_takes_host_port_and_bracketed_v6),
        cmocka_unit_test(test_config_each_kind_loads_its_typed_value_or_says_why),
        cmocka_unit_test(test_config_env_replaces_a_typed_value_of_the_file),
        cmocka_unit_test(test_config_sentinels_without_url_give_an_address),
    };
    return cmocka_run_group_tests_name("config", tests, setup_dir,
                                       teardown_dir);
}
