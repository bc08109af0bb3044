/*
 * Configuration: DESIGN §3.2. The INI file is read with inih, then every
 * HOOKQ_<SECTION>_<KEY> variable overrides its key, then cross-field checks
 * run. Nothing stops at the first problem: every error is collected, one per
 * line, as "FILE:LINE: [section] key: what is wrong" (or "$HOOKQ_X: ..." for
 * a variable), so that `hookq check` can show them all at once.
 *
 * DESIGN: keys are described by one table (section, name, kind, field
 * offset, bounds); the same code path applies a value from the file and from
 * the environment, so both are checked alike. inih only reports the line of
 * its first syntax error and does not give the handler a line number in
 * Debian's build, so we feed it lines ourselves through ini_parse_stream():
 * the reader counts lines, checks their syntax, notes section headers (an
 * [event CODE] with no keys still exists), and strips leading blanks so that
 * an indented line is never taken as a continuation of the previous value.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "common_int.h"
#include "config_int.h"
#include "envelope_int.h"
#include "signature_int.h"
#include "store_int.h"
#include "template_int.h"

#define LINE_MAX_LEN 4096 /* longest line we read; more is an error */
#define MAX_ERRORS 200    /* further errors are counted, not listed */

/* ------------------------------------------------------------------------ */
/* Unit parsers.                                                            */

/* Parse a non-negative decimal integer prefix; *end gets the rest. */
static int
parse_uint_prefix(const char *s, int64_t *out, const char **end)
{
    int64_t v = 0;
    const char *p = s;

    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        int d = *p - '0';
        if (v > (INT64_MAX - d) / 10)
            return -2; /* overflow */
        v = v * 10 + d;
    }
    *out = v;
    *end = p;
    return 0;
}

/* Append printf-style text to the NUL-terminated `buf` of `size` bytes. */
static void append(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
append(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

/* What goes before item `i` of `n` in a list such as "a, b, c or d". */
static const char *
list_sep(size_t i, size_t n)
{
    if (i == 0)
        return "";
    return i + 1 == n ? " or " : ", ";
}

/* A quantity written as a whole number and a unit: "250ms", "1MiB". */
struct unit {
    const char *name;
    uint64_t mul;
};

struct quantity {
    const char *what;    /* in messages: "duration" */
    const char *example; /* in messages: "250ms or 30s" */
    uint64_t max;
    size_t nunits;
    const struct unit *units;
};

static const struct unit duration_units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
};
static const struct quantity durations = {"duration", "250ms or 30s", INT64_MAX,
                                          HQ_ARRAY_SIZE(duration_units),
                                          duration_units};

static const struct unit size_units[] = {
    {"B", 1},
    {"KiB", 1024},
    {"MiB", 1024 * 1024},
    {"GiB", 1024ull * 1024 * 1024},
};
static const struct quantity sizes = {"size", "1MiB", SIZE_MAX,
                                      HQ_ARRAY_SIZE(size_units), size_units};

/* Append the units of `q` as "ms, s, m, h or d", each after `prefix`. */
static void
append_units(char *why, size_t whysize, const struct quantity *q,
             const char *prefix)
{
    for (size_t i = 0; i < q->nunits; i++)
        append(why, whysize, "%s%s%s", list_sep(i, q->nunits), prefix,
               q->units[i].name);
}

/* Parse `s` as a quantity `q` (0 needs no unit) into `*out`, at most q->max. */
static int
quantity_why(const struct quantity *q, const char *s, uint64_t *out, char *why,
             size_t whysize)
{
    const char *end;
    int64_t n;
    int rc = parse_uint_prefix(s, &n, &end);

    if (rc == -2) {
        snprintf(why, whysize, "%s '%s' is too large", q->what, s);
        return HQ_EINVAL;
    }
    if (rc != 0) {
        snprintf(why, whysize,
                 "invalid %s '%s': expected a whole number and a unit (",
                 q->what, s);
        append_units(why, whysize, q, "");
        append(why, whysize, "), e.g. %s", q->example);
        return HQ_EINVAL;
    }
    if (*end == '\0') {
        if (n == 0) {
            *out = 0;
            return HQ_OK;
        }
        snprintf(why, whysize, "%s '%s' has no unit: write ", q->what, s);
        append_units(why, whysize, q, s);
        return HQ_EINVAL;
    }
    for (size_t i = 0; i < q->nunits; i++) {
        if (strcmp(end, q->units[i].name) == 0) {
            if ((uint64_t)n > q->max / q->units[i].mul) {
                snprintf(why, whysize, "%s '%s' is too large", q->what, s);
                return HQ_EINVAL;
            }
            *out = (uint64_t)n * q->units[i].mul;
            return HQ_OK;
        }
    }
    snprintf(why, whysize, "invalid %s '%s': unknown unit '%s' (use ", q->what,
             s, end);
    append_units(why, whysize, q, "");
    append(why, whysize, ")");
    return HQ_EINVAL;
}

static int
duration_why(const char *s, int64_t *out, char *why, size_t whysize)
{
    uint64_t v;

    if (quantity_why(&durations, s, &v, why, whysize) != HQ_OK)
        return HQ_EINVAL;
    *out = (int64_t)v;
    return HQ_OK;
}

static int
size_why(const char *s, size_t *out, char *why, size_t whysize)
{
    uint64_t v;

    if (quantity_why(&sizes, s, &v, why, whysize) != HQ_OK)
        return HQ_EINVAL;
    *out = (size_t)v;
    return HQ_OK;
}

static int
range_why(const char *s, int64_t *lo, int64_t *hi, char *why, size_t whysize)
{
    const char *dots = strstr(s, "..");
    char a[64], b[64];
    size_t alen;

    if (dots == NULL || dots == s || dots[2] == '\0') {
        snprintf(why, whysize,
                 "invalid range '%s': expected MIN..MAX, e.g. 1s..10m", s);
        return HQ_EINVAL;
    }
    alen = (size_t)(dots - s);
    if (alen >= sizeof(a) || strlen(dots + 2) >= sizeof(b)) {
        snprintf(why, whysize, "invalid range '%s': too long", s);
        return HQ_EINVAL;
    }
    memcpy(a, s, alen);
    a[alen] = '\0';
    snprintf(b, sizeof(b), "%s", dots + 2);
    if (duration_why(a, lo, why, whysize) != HQ_OK ||
        duration_why(b, hi, why, whysize) != HQ_OK)
        return HQ_EINVAL;
    if (*lo > *hi) {
        snprintf(why, whysize,
                 "invalid range '%s': the minimum %s is above the maximum %s",
                 s, a, b);
        return HQ_EINVAL;
    }
    return HQ_OK;
}

static int
rate_why(const char *s, int *calls, int64_t *window, char *why, size_t whysize)
{
    const char *end;
    int64_t n;
    char w[64];

    if (parse_uint_prefix(s, &n, &end) != 0 || *end != '/' || n < 1 ||
        n > 1000000 || end[1] == '\0') {
        snprintf(why, whysize,
                 "invalid rate '%s': expected CALLS/WINDOW with CALLS from 1 "
                 "to 1000000, e.g. 2/1s or 100/1m",
                 s);
        return HQ_EINVAL;
    }
    /* "2/s" reads as "2/1s". */
    snprintf(w, sizeof(w), "%s%s", isdigit((unsigned char)end[1]) ? "" : "1",
             end + 1);
    if (duration_why(w, window, why, whysize) != HQ_OK)
        return HQ_EINVAL;
    if (*window <= 0) {
        snprintf(why, whysize, "invalid rate '%s': the window must be above 0",
                 s);
        return HQ_EINVAL;
    }
    *calls = (int)n;
    return HQ_OK;
}

int
hq__parse_duration_ms(const char *s, int64_t *out)
{
    char why[256];
    return duration_why(s, out, why, sizeof(why));
}

int
hq__parse_size(const char *s, size_t *out)
{
    char why[256];
    return size_why(s, out, why, sizeof(why));
}

int
hq__parse_range_ms(const char *s, int64_t *lo, int64_t *hi)
{
    char why[256];
    return range_why(s, lo, hi, why, sizeof(why));
}

int
hq__parse_rate(const char *s, int *calls, int64_t *window_ms)
{
    char why[256];
    return rate_why(s, calls, window_ms, why, sizeof(why));
}

/* ------------------------------------------------------------------------ */
/* String checks: each returns 0, or -1 with the reason in `why`.           */

int
hq__addr_split(const char *v, char *host, size_t hostsize, int *port)
{
    const char *colon, *h = v, *end;
    size_t hl;
    int64_t p;

    if (v[0] == '[') { /* [::1]:8080 */
        const char *rb = strchr(v, ']');
        if (rb == NULL || rb == v + 1 || rb[1] != ':')
            return -1;
        h = v + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(v, ':');
        if (colon == NULL || colon == v || memchr(v, ':', (size_t)(colon - v)))
            return -1;
        hl = (size_t)(colon - v);
    }
    if (parse_uint_prefix(colon + 1, &p, &end) != 0 || *end != '\0' || p > 65535)
        return -1;
    for (const char *c = v; c < colon; c++)
        if (isspace((unsigned char)*c) || *c == '/')
            return -1;
    if (hl >= hostsize)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

static int
check_listen(const char *v, char *why, size_t n)
{
    char host[256];
    int port;

    if (hq__addr_split(v, host, sizeof(host), &port) == 0)
        return 0;
    snprintf(why, n,
             "invalid address '%s': expected HOST:PORT, e.g. 127.0.0.1:8080 "
             "or [::1]:8080",
             v);
    return -1;
}

static int
check_redis_url(const char *v, char *why, size_t n)
{
    struct hq__store_addr addr;
    struct hq__err err;

    if ((strncmp(v, "redis://", 8) == 0 && v[8] != '\0') ||
        (strncmp(v, "unix:///", 8) == 0 && v[8] != '\0')) {
        /* The rest as the store reads it at startup (port, db, lengths). */
        if (hq__store_parse_url(v, 0, &addr, &err) == HQ_OK)
            return 0;
        snprintf(why, n, "%s", err.msg);
        return -1;
    }
    snprintf(why, n,
             "invalid url '%s': expected "
             "redis://[[user]:password@]host[:port][,host:port...][/db] "
             "or unix:///path",
             v);
    return -1;
}

static int
check_sentinels(const char *v, char *why, size_t n)
{
    struct hq__store_seed seeds[HQ_SEEDS_MAX];
    struct hq__err err;
    unsigned count;

    if (hq__store_parse_hostports(v, strlen(v), "sentinels", 1, seeds, &count,
                                  &err) == HQ_OK)
        return 0;
    /* "sentinels: ..." is said by the key name already. */
    snprintf(why, n, "%s", strncmp(err.msg, "sentinels: ", 11) == 0
                               ? err.msg + 11 : err.msg);
    return -1;
}

static int
check_sentinel_master(const char *v, char *why, size_t n)
{
    if (v[0] == '\0' || strlen(v) > 127) {
        snprintf(why, n, "must be 1 to 127 characters");
        return -1;
    }
    for (const char *p = v; *p; p++) {
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p)) {
            snprintf(why, n, "invalid name '%s': no spaces or control characters",
                     v);
            return -1;
        }
    }
    return 0;
}

static int
check_http_url(const char *v, char *why, size_t n)
{
    if ((strncmp(v, "http://", 7) == 0 && v[7] != '\0' && v[7] != '/') ||
        (strncmp(v, "https://", 8) == 0 && v[8] != '\0' && v[8] != '/')) {
        for (const char *p = v; *p; p++)
            if (isspace((unsigned char)*p))
                goto bad;
        return 0;
    }
bad:
    snprintf(why, n, "invalid url '%s': expected http://host[:port][/path]", v);
    return -1;
}

/* [api] token_command: a program given by its absolute path, no blanks. */
static int
check_program(const char *v, char *why, size_t n)
{
    if (v[0] == '/') {
        for (const char *p = v; *p; p++)
            if (isspace((unsigned char)*p))
                goto bad;
        return 0;
    }
bad:
    snprintf(why, n, "'%s': expected the absolute path of a program", v);
    return -1;
}

static int
check_namespace(const char *v, char *why, size_t n)
{
    size_t len = strlen(v);

    if (len == 0 || len > 63) {
        snprintf(why, n, "must be 1 to 63 characters");
        return -1;
    }
    for (const char *p = v; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' &&
            *p != '.') {
            snprintf(why, n,
                     "invalid namespace '%s': use letters, digits, '_', '-' "
                     "and '.'",
                     v);
            return -1;
        }
    }
    return 0;
}

static int
check_nonempty(const char *v, char *why, size_t n)
{
    if (v[0] == '\0') {
        snprintf(why, n, "must not be empty");
        return -1;
    }
    return 0;
}

static int
check_path(const char *v, char *why, size_t n)
{
    if (v[0] != '/') {
        snprintf(why, n, "invalid path '%s': must start with '/'", v);
        return -1;
    }
    for (const char *p = v; *p; p++) {
        if (isspace((unsigned char)*p) || *p == '?' || *p == '#' ||
            (unsigned char)*p < 0x20) {
            snprintf(why, n, "invalid path '%s': no blanks, '?' or '#'", v);
            return -1;
        }
    }
    return 0;
}

static int
check_customer(const char *v, char *why, size_t n)
{
    if (strncmp(v, "header:", 7) == 0) {
        if (v[7] == '\0')
            goto bad;
        for (const char *p = v + 7; *p; p++)
            if (!isgraph((unsigned char)*p) || *p == ':')
                goto bad;
        return 0;
    }
    if (v[0] == '/') {
        /* As intake reads it at startup: a '~' not followed by 0 or 1. */
        struct hq__customer_spec spec;
        struct hq__err err;
        int rc = hq__customer_spec_init(&spec, v, &err);

        hq__customer_spec_release(&spec);
        if (rc == HQ_OK)
            return 0;
        snprintf(why, n, "invalid customer: %s", err.msg);
        return -1;
    }
bad:
    snprintf(why, n,
             "invalid customer '%s': expected a JSON pointer such as "
             "/data/customer_id, or header:NAME",
             v);
    return -1;
}

static int
check_secret(const char *v, char *why, size_t n)
{
    const char *b = strncmp(v, "whsec_", 6) == 0 ? v + 6 : v;
    size_t len = strlen(b);

    if (len == 0)
        goto bad;
    for (size_t i = 0; i < len; i++) {
        char c = b[i];
        if (isalnum((unsigned char)c) || c == '+' || c == '/')
            continue;
        if (c == '=' && i + 2 >= len)
            continue;
        goto bad;
    }
    /*
     * And what intake decodes at startup: the loop above lets through a
     * length that is not a multiple of 4 ("whsec_abc") or a key over
     * HQ_SIG_KEY_MAX bytes, which `hookq check` then called valid.
     */
    {
        struct hq__sig_key key;
        struct hq__err err;
        int rc = hq__sig_key_parse(v, &key, &err);

        memset(&key, 0, sizeof(key));
        if (rc != HQ_OK)
            goto bad;
    }
    return 0;
bad:
    /* Never echo the secret. */
    snprintf(why, n, "invalid secret: expected whsec_ followed by base64");
    return -1;
}

/* ------------------------------------------------------------------------ */
/* The table of keys.                                                       */

enum kind {
    K_STR,        /* string, with an optional check */
    K_OPTSTR,     /* string; empty = unset (NULL) */
    K_LISTEN,     /* HOST:PORT */
    K_LISTEN_OFF, /* HOST:PORT or off (NULL) */
    K_UINT,       /* unsigned, min..max */
    K_INT,        /* int, min..max */
    K_I64,        /* int64_t, min..max */
    K_DURATION,   /* int64_t ms, min..max */
    K_SIZE,       /* size_t bytes, min..max */
    K_RANGE,      /* two int64_t ms: off, off2 */
    K_RATE,       /* int calls at off, int64_t ms at off2 */
    K_ENUM,       /* one of `names`; stored as its index (an int) */
};

struct keydef {
    const char *section; /* "" = top level */
    const char *name;
    enum kind kind;
    size_t off;
    size_t off2;
    int64_t min;
    int64_t max;
    int (*check)(const char *v, char *why, size_t n);
    const char *const *names; /* K_ENUM: the values, NULL-terminated */
};

/* The values of the enum-valued keys, in the order of their C enums. */
static const char *const policy_names[] = {"deadletter", "hold", NULL};
static const char *const endpoint_names[] = {"route", "url", NULL};
static const char *const logfmt_names[] = {"text", "json", NULL};
static const char *const loglevel_names[] = {"error", "warn", "info", "debug",
                                             NULL};

#define F(field) offsetof(struct hq__config, field)

static const struct keydef keys[] = {
    {"", "log_format", K_ENUM, F(log_format), 0, 0, 0, NULL, logfmt_names},
    {"", "log_level", K_ENUM, F(log_level), 0, 0, 0, NULL, loglevel_names},

    {"redis", "url", K_OPTSTR, F(redis.url), 0, 0, 0, check_redis_url, NULL},
    {"redis", "sentinels", K_OPTSTR, F(redis.sentinels), 0, 0, 0, check_sentinels,
     NULL},
    {"redis", "sentinel_master", K_STR, F(redis.sentinel_master), 0, 0, 0,
     check_sentinel_master, NULL},
    {"redis", "namespace", K_STR, F(redis.ns), 0, 0, 0, check_namespace, NULL},
    {"redis", "shards", K_UINT, F(redis.shards), 0, 1, HQ_SHARDS_MAX, NULL, NULL},
    {"redis", "data_dir", K_STR, F(redis.data_dir), 0, 0, 0, check_nonempty,
     NULL},
    {"redis", "wait_replicas", K_UINT, F(redis.wait_replicas), 0, 0, 100, NULL,
     NULL},
    {"redis", "wait_timeout", K_DURATION, F(redis.wait_timeout_ms), 0, 1, 60000,
     NULL, NULL},

    {"intake", "listen", K_LISTEN, F(intake.listen), 0, 0, 0, NULL, NULL},
    {"intake", "path", K_STR, F(intake.path), 0, 0, 0, check_path, NULL},
    {"intake", "customer", K_STR, F(intake.customer), 0, 0, 0, check_customer,
     NULL},
    {"intake", "max_body", K_SIZE, F(intake.max_body), 0, 1, 1024LL << 20, NULL,
     NULL},
    {"intake", "max_header", K_SIZE, F(intake.max_header), 0, 1024, 1LL << 20,
     NULL, NULL},
    {"intake", "header_timeout", K_DURATION, F(intake.header_timeout_ms), 0, 1,
     INT64_MAX, NULL, NULL},
    {"intake", "idle_timeout", K_DURATION, F(intake.idle_timeout_ms), 0, 1,
     INT64_MAX, NULL, NULL},
    {"intake", "max_key_depth", K_I64, F(intake.max_key_depth), 0, 0, INT64_MAX,
     NULL, NULL},
    {"intake", "secret", K_OPTSTR, F(intake.secret), 0, 0, 0, check_secret,
     NULL},
    {"intake", "dedup_ttl", K_DURATION, F(intake.dedup_ttl_ms), 0, 1000,
     INT64_MAX, NULL, NULL},
    {"intake", "threads", K_UINT, F(intake.threads), 0, 1, 256, NULL, NULL},
    {"intake", "max_connections", K_UINT, F(intake.max_connections), 0, 1,
     1000000, NULL, NULL},

    {"admin", "listen", K_LISTEN_OFF, F(admin.listen), 0, 0, 0, NULL, NULL},
    {"admin", "token", K_OPTSTR, F(admin.token), 0, 0, 0, NULL, NULL},

    {"worker", "concurrency", K_UINT, F(worker.concurrency), 0, 1, 1000000,
     NULL, NULL},
    {"worker", "threads", K_UINT, F(worker.threads), 0, 1, 256, NULL, NULL},
    {"worker", "lease", K_DURATION, F(worker.lease_ms), 0, 1000, INT64_MAX,
     NULL, NULL},
    {"worker", "max_attempts", K_INT, F(worker.max_attempts), 0, 1, 1000000,
     NULL, NULL},
    {"worker", "backoff", K_RANGE, F(worker.backoff_min_ms),
     F(worker.backoff_max_ms), 0, 0, NULL, NULL},
    {"worker", "on_failure", K_ENUM, F(worker.on_failure), 0, 0, 0, NULL,
     policy_names},
    {"worker", "shutdown_timeout", K_DURATION, F(worker.shutdown_timeout_ms), 0,
     0, INT64_MAX, NULL, NULL},

    {"api", "base_url", K_STR, F(api.base_url), 0, 0, 0, check_http_url, NULL},
    {"api", "rate", K_RATE, F(api.rate_calls), F(api.rate_window_ms), 0, 0,
     NULL, NULL},
    {"api", "margin", K_DURATION, F(api.margin_ms), 0, 0, INT64_MAX, NULL,
     NULL},
    {"api", "endpoint", K_ENUM, F(api.endpoint), 0, 0, 0, NULL, endpoint_names},
    {"api", "timeout", K_DURATION, F(api.timeout_ms), 0, 1, INT64_MAX, NULL,
     NULL},
    {"api", "token_command", K_OPTSTR, F(api.token_command), 0, 0, 0,
     check_program, NULL},

    {"deliver", "secret", K_OPTSTR, F(deliver.secret), 0, 0, 0, check_secret,
     NULL},
    {"deliver", "timeout", K_DURATION, F(deliver.timeout_ms), 0, 1, INT64_MAX,
     NULL, NULL},
    {"deliver", "breaker", K_INT, F(deliver.breaker), 0, 0, 1000000, NULL,
     NULL},
    {"deliver", "probe", K_RANGE, F(deliver.probe_min_ms),
     F(deliver.probe_max_ms), 0, 0, NULL, NULL},
};

#undef F

static const char *const sections[] = {"redis", "intake", "admin", "worker",
                                       "api", "deliver"};

/* ------------------------------------------------------------------------ */
/* Loader state and error collection.                                       */

struct loader {
    struct hq__config *cfg;
    const char *file; /* shown in messages */
    FILE *fp;
    int lineno; /* of the line inih is handling */
    char *line; /* getline buffer */
    size_t linecap;

    /* The current section, as our reader saw it. */
    int skip;                /* the section header was bad: skip its keys */
    struct hq__event_cfg *ev; /* the [event CODE] being read, or NULL */
    int set_at[HQ_ARRAY_SIZE(keys)]; /* line a key was set on; 0 = not */
    int *ev_deliver_at;              /* per event: line of deliver/on_failure */
    int *ev_policy_at;

    char *err;
    size_t errsize;
    size_t errlen;
    int nerr;
    int nomem;
};

static void add_error(struct loader *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
add_error(struct loader *L, const char *fmt, ...)
{
    va_list ap;
    int n;

    /* A negative count marks the closing summary line, always written. */
    if (L->nerr >= 0 && ++L->nerr > MAX_ERRORS)
        return;
    if (L->err == NULL || L->errsize == 0)
        return;
    if (L->errlen + 1 >= L->errsize)
        return;
    va_start(ap, fmt);
    n = vsnprintf(L->err + L->errlen, L->errsize - L->errlen, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= L->errsize - L->errlen - 1) {
        /* Truncated: keep the lines that fit whole. */
        L->err[L->errlen] = '\0';
        L->errlen = L->errsize; /* full */
        return;
    }
    L->errlen += (size_t)n;
    L->err[L->errlen++] = '\n';
    L->err[L->errlen] = '\0';
}

/* Where a value came from: "FILE:LINE" or "$HOOKQ_X". */
struct origin {
    const char *file;
    int line;        /* 0 with env set */
    const char *env; /* the variable's name, or NULL */
};

static void
origin_error(struct loader *L, const struct origin *o, const char *section,
             const char *name, const char *why)
{
    char sec[160];

    if (section[0] == '\0')
        sec[0] = '\0';
    else
        snprintf(sec, sizeof(sec), "[%s] ", section);
    if (o->env != NULL)
        add_error(L, "$%s: %s%s: %s", o->env, sec, name, why);
    else if (o->line > 0)
        add_error(L, "%s:%d: %s%s: %s", o->file, o->line, sec, name, why);
    else
        add_error(L, "%s: %s%s: %s", o->file ? o->file : "(defaults)", sec,
                  name, why);
}

static char *
xstrdup(struct loader *L, const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        L->nomem = 1;
    return d;
}

/* Levenshtein distance, for "did you mean". Short strings only. */
static size_t
edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t prev[64], cur[64];

    if (la >= 63 || lb >= 63)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] =
                sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof(size_t));
    }
    return prev[lb];
}

static void
unknown_key(struct loader *L, const struct origin *o, const char *section,
            const char *name)
{
    const char *best = NULL;
    size_t bestd = 3;
    char why[200];
    int is_event = strncmp(section, "event ", 6) == 0;
    static const char *const event_keys[] = {"fetch", "deliver", "on_failure",
                                             "secret", "timeout"};

    if (is_event) {
        for (size_t i = 0; i < HQ_ARRAY_SIZE(event_keys); i++) {
            size_t d = edit_distance(name, event_keys[i]);
            if (d < bestd) {
                bestd = d;
                best = event_keys[i];
            }
        }
    } else {
        for (size_t i = 0; i < HQ_ARRAY_SIZE(keys); i++) {
            size_t d;
            if (strcmp(keys[i].section, section) != 0)
                continue;
            d = edit_distance(name, keys[i].name);
            if (d < bestd) {
                bestd = d;
                best = keys[i].name;
            }
        }
    }
    if (best != NULL)
        snprintf(why, sizeof(why), "unknown key (did you mean '%s'?)", best);
    else
        snprintf(why, sizeof(why), "unknown key");
    origin_error(L, o, section, name, why);
}

/* ------------------------------------------------------------------------ */
/* Applying one value.                                                      */

/*
 * The index of `v` in the NULL-terminated `names`; if it is not there,
 * -1 with "invalid value 'V': expected A, B or C" in `why`.
 */
static int
enum_value(const char *v, const char *const *names, char *why, size_t n)
{
    size_t count = 0;

    for (; names[count] != NULL; count++)
        if (strcmp(v, names[count]) == 0)
            return (int)count;
    snprintf(why, n, "invalid value '%s': expected ", v);
    for (size_t i = 0; i < count; i++)
        append(why, n, "%s%s", list_sep(i, count), names[i]);
    return -1;
}

/* Set key `k` from string `v`; on a bad value, report it at `o`. */
static void
apply(struct loader *L, const struct keydef *k, const char *v,
      const struct origin *o)
{
    char *base = (char *)L->cfg;
    char why[512];
    int64_t n;
    const char *end;

    why[0] = '\0';
    switch (k->kind) {
    case K_STR:
    case K_OPTSTR:
    case K_LISTEN:
    case K_LISTEN_OFF: {
        char **field = (char **)(base + k->off);
        char *copy = NULL;

        if (k->kind == K_OPTSTR && v[0] == '\0') {
            /* unset */
        } else if (k->kind == K_LISTEN_OFF && strcmp(v, "off") == 0) {
            /* none */
        } else {
            if ((k->kind == K_LISTEN || k->kind == K_LISTEN_OFF) &&
                check_listen(v, why, sizeof(why)) != 0)
                break;
            if (k->kind == K_STR && v[0] == '\0' && k->check == NULL) {
                snprintf(why, sizeof(why), "must not be empty");
                break;
            }
            if (k->check != NULL && k->check(v, why, sizeof(why)) != 0)
                break;
            copy = xstrdup(L, v);
            if (copy == NULL)
                return;
        }
        free(*field);
        *field = copy;
        return;
    }
    case K_UINT:
    case K_INT:
    case K_I64:
        if (parse_uint_prefix(v, &n, &end) != 0 || *end != '\0') {
            snprintf(why, sizeof(why),
                     "invalid number '%s': expected a whole "
                     "number from %lld to %lld",
                     v, (long long)k->min, (long long)k->max);
            break;
        }
        if (n < k->min || n > k->max) {
            snprintf(why, sizeof(why), "%s is out of range (%lld to %lld)", v,
                     (long long)k->min, (long long)k->max);
            break;
        }
        if (k->kind == K_UINT)
            *(unsigned *)(base + k->off) = (unsigned)n;
        else if (k->kind == K_INT)
            *(int *)(base + k->off) = (int)n;
        else
            *(int64_t *)(base + k->off) = n;
        return;
    case K_DURATION:
        if (duration_why(v, &n, why, sizeof(why)) != HQ_OK)
            break;
        if (n < k->min) {
            snprintf(why, sizeof(why),
                     "duration '%s' is below the minimum of "
                     "%lldms",
                     v, (long long)k->min);
            break;
        }
        if (n > k->max) {
            snprintf(why, sizeof(why),
                     "duration '%s' is above the maximum of %lldms", v,
                     (long long)k->max);
            break;
        }
        *(int64_t *)(base + k->off) = n;
        return;
    case K_SIZE: {
        size_t sz;
        if (size_why(v, &sz, why, sizeof(why)) != HQ_OK)
            break;
        if ((int64_t)sz < k->min || (int64_t)sz > k->max) {
            snprintf(why, sizeof(why),
                     "size '%s' is out of range (%lldB to "
                     "%lldB)",
                     v, (long long)k->min, (long long)k->max);
            break;
        }
        *(size_t *)(base + k->off) = sz;
        return;
    }
    case K_RANGE: {
        int64_t lo, hi;
        if (range_why(v, &lo, &hi, why, sizeof(why)) != HQ_OK)
            break;
        *(int64_t *)(base + k->off) = lo;
        *(int64_t *)(base + k->off2) = hi;
        return;
    }
    case K_RATE: {
        int calls;
        int64_t w;
        if (rate_why(v, &calls, &w, why, sizeof(why)) != HQ_OK)
            break;
        *(int *)(base + k->off) = calls;
        *(int64_t *)(base + k->off2) = w;
        return;
    }
    case K_ENUM: {
        int e = enum_value(v, k->names, why, sizeof(why));
        if (e < 0)
            break;
        *(int *)(base + k->off) = e;
        return;
    }
    }
    origin_error(L, o, k->section, k->name, why);
}

static const struct keydef *
find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < HQ_ARRAY_SIZE(keys); i++)
        if (strcmp(keys[i].section, section) == 0 &&
            strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Events.                                                                  */

static int
check_fetch(const char *v, char *why, size_t n)
{
    const char *sp = strchr(v, ' ');
    const char *p;
    int depth = 0;

    if (sp == NULL || sp == v)
        goto bad;
    for (p = v; p < sp; p++)
        if (!isupper((unsigned char)*p))
            goto bad;
    p = sp;
    while (*p == ' ')
        p++;
    if (*p != '/')
        goto bad;
    for (const char *q = p; *q; q++) {
        if (isspace((unsigned char)*q))
            goto bad;
        if (*q == '{') {
            const char *close = strchr(q, '}');
            size_t len;
            if (depth || close == NULL)
                goto badbrace;
            len = (size_t)(close - q - 1);
            if (!((len == 8 && strncmp(q + 1, "customer", 8) == 0) ||
                  (len == 4 && strncmp(q + 1, "code", 4) == 0) ||
                  (len > 5 && strncmp(q + 1, "data.", 5) == 0))) {
                snprintf(why, n,
                         "invalid placeholder '%.*s' in '%s': use "
                         "{data.FIELD}, {customer} or {code}",
                         (int)len + 2, q, v);
                return -1;
            }
            for (const char *c = q + 1; c < close; c++) {
                if (*c == '.' && (c[1] == '.' || c[1] == '}')) {
                    snprintf(why, n,
                             "invalid placeholder '%.*s' in '%s': "
                             "empty field name",
                             (int)len + 2, q, v);
                    return -1;
                }
            }
            q = close;
        } else if (*q == '}') {
            goto badbrace;
        }
    }
    /*
     * And what the processing parses at startup: the checks above let
     * through a control character in the path, or a '{' inside a
     * placeholder, which `hookq check` then called valid.
     */
    {
        struct hq__template *t = NULL;
        struct hq__err err;

        if (hq__template_parse(v, &t, &err) != HQ_OK) {
            snprintf(why, n, "invalid fetch '%s': %s", v, err.msg);
            return -1;
        }
        hq__template_free(t);
    }
    return 0;
badbrace:
    snprintf(why, n, "unbalanced braces in '%s'", v);
    return -1;
bad:
    snprintf(why, n,
             "invalid fetch '%s': expected METHOD /path, e.g. "
             "GET /posts/{data.post_id}",
             v);
    return -1;
}

static int
check_deliver(const char *v, char *why, size_t n)
{
    if (strncmp(v, "http://", 7) == 0 || strncmp(v, "https://", 8) == 0)
        return check_http_url(v, why, n);
    if (strncmp(v, "exec:", 5) == 0) {
        if (v[5] != '/') {
            snprintf(why, n,
                     "invalid deliver '%s': exec needs an absolute "
                     "path, exec:/path/to/program",
                     v);
            return -1;
        }
        return 0;
    }
    if (strcmp(v, "log") == 0)
        return 0;
    if (strncmp(v, "log:", 4) == 0) {
        if (v[4] == '\0') {
            snprintf(why, n, "invalid deliver '%s': log: needs a file name", v);
            return -1;
        }
        return 0;
    }
    snprintf(why, n,
             "invalid deliver '%s': expected http://..., exec:/path, "
             "log or log:FILE",
             v);
    return -1;
}

static int
check_code(const char *code, char *why, size_t n)
{
    if (code[0] == '\0') {
        snprintf(why, n, "missing event code: write [event CODE]");
        return -1;
    }
    if (strlen(code) > 128) {
        snprintf(why, n, "event code is longer than 128 characters");
        return -1;
    }
    for (const char *p = code; *p; p++) {
        if (*p == ':') {
            snprintf(why, n,
                     "event code '%s' must not contain ':' (keys are "
                     "CUSTOMER:CODE)",
                     code);
            return -1;
        }
        if (!isgraph((unsigned char)*p)) {
            snprintf(why, n,
                     "event code '%s' must not contain blanks or "
                     "control characters",
                     code);
            return -1;
        }
    }
    return 0;
}

/* Find or add the event `code`; NULL when out of memory. */
static struct hq__event_cfg *
event_get(struct loader *L, const char *code, int line)
{
    struct hq__config *cfg = L->cfg;
    struct hq__event_cfg *evs;
    int *a, *b;

    for (size_t i = 0; i < cfg->nevents; i++)
        if (strcmp(cfg->events[i].code, code) == 0)
            return &cfg->events[i];
    evs = realloc(cfg->events, (cfg->nevents + 1) * sizeof(*evs));
    if (evs == NULL)
        goto nomem;
    cfg->events = evs;
    a = realloc(L->ev_deliver_at, (cfg->nevents + 1) * sizeof(int));
    if (a == NULL)
        goto nomem;
    L->ev_deliver_at = a;
    b = realloc(L->ev_policy_at, (cfg->nevents + 1) * sizeof(int));
    if (b == NULL)
        goto nomem;
    L->ev_policy_at = b;
    memset(&evs[cfg->nevents], 0, sizeof(*evs));
    evs[cfg->nevents].code = xstrdup(L, code);
    if (evs[cfg->nevents].code == NULL)
        return NULL;
    evs[cfg->nevents].on_failure = -1;
    evs[cfg->nevents].timeout_ms = -1;
    evs[cfg->nevents].line = line;
    a[cfg->nevents] = 0;
    b[cfg->nevents] = 0;
    return &evs[cfg->nevents++];
nomem:
    L->nomem = 1;
    return NULL;
}

static void
event_key(struct loader *L, const char *section, const char *name,
          const char *value, const struct origin *o)
{
    struct hq__event_cfg *ev = L->ev;
    size_t idx = (size_t)(ev - L->cfg->events);
    char why[512];

    if (strcmp(name, "fetch") == 0) {
        char **f;
        if (check_fetch(value, why, sizeof(why)) != 0) {
            origin_error(L, o, section, name, why);
            return;
        }
        f = realloc(ev->fetch, (ev->nfetch + 1) * sizeof(*f));
        if (f == NULL) {
            L->nomem = 1;
            return;
        }
        ev->fetch = f;
        if ((f[ev->nfetch] = xstrdup(L, value)) != NULL)
            ev->nfetch++;
    } else if (strcmp(name, "deliver") == 0) {
        if (L->ev_deliver_at[idx]) {
            snprintf(why, sizeof(why), "set twice (first on line %d)",
                     L->ev_deliver_at[idx]);
            origin_error(L, o, section, name, why);
            return;
        }
        L->ev_deliver_at[idx] = o->line;
        if (check_deliver(value, why, sizeof(why)) != 0) {
            origin_error(L, o, section, name, why);
            return;
        }
        free(ev->deliver);
        ev->deliver = xstrdup(L, value);
    } else if (strcmp(name, "on_failure") == 0) {
        int e;
        if (L->ev_policy_at[idx]) {
            snprintf(why, sizeof(why), "set twice (first on line %d)",
                     L->ev_policy_at[idx]);
            origin_error(L, o, section, name, why);
            return;
        }
        L->ev_policy_at[idx] = o->line;
        if ((e = enum_value(value, policy_names, why, sizeof(why))) < 0) {
            origin_error(L, o, section, name, why);
            return;
        }
        ev->on_failure = e;
    } else if (strcmp(name, "secret") == 0) {
        if (ev->secret) {
            origin_error(L, o, section, name, "set twice");
            return;
        }
        if (check_secret(value, why, sizeof(why)) != 0) {
            origin_error(L, o, section, name, why);
            return;
        }
        ev->secret = xstrdup(L, value);
    } else if (strcmp(name, "timeout") == 0) {
        int64_t ms;
        if (ev->timeout_ms >= 0) {
            origin_error(L, o, section, name, "set twice");
            return;
        }
        if (hq__parse_duration_ms(value, &ms) != HQ_OK || ms < 1) {
            snprintf(why, sizeof(why),
                     "invalid duration '%s' (expected a number with ms, s, "
                     "m, h or d, at least 1ms)",
                     value);
            origin_error(L, o, section, name, why);
            return;
        }
        ev->timeout_ms = ms;
    } else {
        unknown_key(L, o, section, name);
    }
}

/* ------------------------------------------------------------------------ */
/* Reading the file.                                                        */

static int
is_known_section(const char *s)
{
    for (size_t i = 0; i < HQ_ARRAY_SIZE(sections); i++)
        if (strcmp(sections[i], s) == 0)
            return 1;
    return 0;
}

/* A section header "[...]" seen by the reader: note it, check its name. */
static void
enter_section(struct loader *L, const char *name)
{
    char why[300];

    L->skip = 1;
    L->ev = NULL;
    if (is_known_section(name)) {
        L->skip = 0;
        return;
    }
    if (strncmp(name, "event", 5) == 0 &&
        (name[5] == '\0' || isspace((unsigned char)name[5]))) {
        const char *code = name + 5;
        while (isspace((unsigned char)*code))
            code++;
        if (check_code(code, why, sizeof(why)) != 0) {
            add_error(L, "%s:%d: [%s]: %s", L->file, L->lineno, name, why);
            return;
        }
        L->ev = event_get(L, code, L->lineno);
        L->skip = L->ev == NULL;
        return;
    }
    add_error(L,
              "%s:%d: [%s]: unknown section (expected redis, intake, admin, "
              "worker, api, deliver, event CODE or event *)",
              L->file, L->lineno, name);
}

/*
 * ini_reader: hand inih one line at a time. Returns NULL at the end. Lines
 * with a syntax error, or too long, are reported here and given to inih as
 * blank lines.
 */
static char *
reader(char *str, int num, void *stream)
{
    struct loader *L = stream;
    ssize_t len = getline(&L->line, &L->linecap, L->fp);
    char *s;
    size_t n;

    if (len < 0)
        return NULL;
    L->lineno++;
    s = L->line;
    /* The string functions below would stop there and drop the rest. */
    if (memchr(s, '\0', (size_t)len) != NULL) {
        add_error(L, "%s:%d: syntax error: a NUL byte in the line", L->file,
                  L->lineno);
        goto blank;
    }
    if (L->lineno == 1 && (unsigned char)s[0] == 0xEF &&
        (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF)
        s += 3;
    while (*s == ' ' || *s == '\t')
        s++;
    n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' ||
                     s[n - 1] == '\t'))
        s[--n] = '\0';
    if (n == 0 || s[0] == ';' || s[0] == '#')
        goto blank;
    if (n + 2 > (size_t)num) {
        add_error(L, "%s:%d: line is too long (over %d characters)", L->file,
                  L->lineno, num - 2);
        goto blank;
    }
    if (s[0] == '[') {
        char *rb = strchr(s, ']');
        char name[256];
        size_t nl;
        char *after;

        if (rb == NULL) {
            add_error(L, "%s:%d: syntax error: section header without ']'",
                      L->file, L->lineno);
            L->skip = 1;
            L->ev = NULL;
            goto blank;
        }
        after = rb + 1;
        while (*after == ' ' || *after == '\t')
            after++;
        if (*after != '\0' && *after != ';' && *after != '#') {
            add_error(L, "%s:%d: syntax error: unexpected text after ']'",
                      L->file, L->lineno);
            L->skip = 1;
            L->ev = NULL;
            goto blank;
        }
        /* The section name as inih will pass it: trimmed. */
        {
            char *a = s + 1, *b = rb;
            while (a < b && isspace((unsigned char)*a))
                a++;
            while (b > a && isspace((unsigned char)b[-1]))
                b--;
            nl = (size_t)(b - a);
            if (nl >= sizeof(name))
                nl = sizeof(name) - 1;
            memcpy(name, a, nl);
            name[nl] = '\0';
        }
        enter_section(L, name);
    } else {
        size_t klen = strcspn(s, "=:");
        if (s[klen] == '\0') {
            add_error(L,
                      "%s:%d: syntax error: expected 'key = value' or "
                      "'[section]'",
                      L->file, L->lineno);
            goto blank;
        }
        if (klen == 0) {
            add_error(L, "%s:%d: syntax error: missing key before '%c'",
                      L->file, L->lineno, s[0]);
            goto blank;
        }
    }
    memcpy(str, s, n);
    str[n] = '\n';
    str[n + 1] = '\0';
    return str;
blank:
    if (num >= 2) {
        str[0] = '\n';
        str[1] = '\0';
    }
    return str;
}

/* ini_handler: one key = value of the file. */
static int
handler(void *user, const char *section, const char *name, const char *value)
{
    struct loader *L = user;
    struct origin o = {L->file, L->lineno, NULL};
    const struct keydef *k;
    size_t idx;

    if (L->skip)
        return 1; /* the section header was reported */
    if (L->ev != NULL) {
        event_key(L, section, name, value, &o);
        return 1;
    }
    k = find_key(section, name);
    if (k == NULL) {
        unknown_key(L, &o, section, name);
        return 1;
    }
    idx = (size_t)(k - keys);
    if (L->set_at[idx]) {
        char why[64];
        snprintf(why, sizeof(why), "set twice (first on line %d)",
                 L->set_at[idx]);
        origin_error(L, &o, section, name, why);
        return 1;
    }
    L->set_at[idx] = L->lineno;
    apply(L, k, value, &o);
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Environment.                                                             */

/* The variable name of a key: HOOKQ_<SECTION>_<KEY>, or HOOKQ_<KEY>. */
static void
env_name(const struct keydef *k, char *buf, size_t size)
{
    size_t n;

    if (k->section[0] == '\0')
        snprintf(buf, size, "HOOKQ_%s", k->name);
    else
        snprintf(buf, size, "HOOKQ_%s_%s", k->section, k->name);
    for (n = 0; buf[n]; n++)
        buf[n] = buf[n] == '-' ? '_' : (char)toupper((unsigned char)buf[n]);
}

static void
apply_env(struct loader *L, char **envp)
{
    extern char **environ;
    char **e = envp ? envp : environ;

    for (; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        char name[128];
        size_t nl;
        int found = 0;

        if (strncmp(*e, "HOOKQ_", 6) != 0 || eq == NULL)
            continue;
        nl = (size_t)(eq - *e);
        if (nl >= sizeof(name))
            continue;
        memcpy(name, *e, nl);
        name[nl] = '\0';
        for (size_t i = 0; i < HQ_ARRAY_SIZE(keys); i++) {
            char want[128];
            env_name(&keys[i], want, sizeof(want));
            if (strcmp(want, name) == 0) {
                struct origin o = {L->file, 0, name};
                apply(L, &keys[i], eq + 1, &o);
                found = 1;
                break;
            }
        }
        if (found)
            continue;
        if (strncmp(name, "HOOKQ_EVENT_", 12) == 0) {
            add_error(L,
                      "$%s: [event] sections cannot be set from the "
                      "environment; write them in the file",
                      name);
            continue;
        }
        /* A variable under a known section but no known key: a typo. */
        for (size_t i = 0; i < HQ_ARRAY_SIZE(sections); i++) {
            char pre[64];
            size_t pl;
            snprintf(pre, sizeof(pre), "HOOKQ_%s_", sections[i]);
            for (pl = 0; pre[pl]; pl++)
                pre[pl] = (char)toupper((unsigned char)pre[pl]);
            if (strncmp(name, pre, pl) == 0) {
                char key[128];
                size_t j;
                for (j = 0; name[pl + j] && j + 1 < sizeof(key); j++)
                    key[j] = (char)tolower((unsigned char)name[pl + j]);
                key[j] = '\0';
                add_error(L, "$%s: [%s] %s: unknown key", name, sections[i],
                          key);
                break;
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Defaults, validation, lifecycle.                                         */

static int
set_defaults(struct hq__config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->log_format = HQ_LOG_TEXT;
    cfg->log_level = 2; /* info */
    cfg->redis.ns = strdup("hookq");
    cfg->redis.sentinel_master = strdup("hookq");
    cfg->redis.shards = 1;
    cfg->redis.data_dir = strdup("./hookq-data");
    cfg->intake.listen = strdup("127.0.0.1:8080");
    cfg->intake.path = strdup("/webhook");
    cfg->intake.customer = strdup("/data/customer_id");
    cfg->redis.wait_timeout_ms = 500;
    cfg->intake.max_body = 1024 * 1024;
    cfg->intake.max_header = 16 * 1024;
    cfg->intake.header_timeout_ms = 10000;
    cfg->intake.idle_timeout_ms = 60000;
    cfg->intake.max_key_depth = 100000;
    cfg->intake.dedup_ttl_ms = 24LL * 3600 * 1000;
    cfg->intake.threads = 2;
    cfg->intake.max_connections = 1024;
    cfg->admin.listen = strdup("127.0.0.1:8081");
    cfg->worker.concurrency = 64;
    cfg->worker.threads = 2;
    cfg->worker.lease_ms = 30000;
    cfg->worker.max_attempts = 12;
    cfg->worker.backoff_min_ms = 5000;
    cfg->worker.backoff_max_ms = 3600000;
    cfg->worker.on_failure = HQ_ON_FAILURE_DEADLETTER;
    cfg->worker.shutdown_timeout_ms = 30000;
    cfg->api.base_url = strdup("http://127.0.0.1:9000");
    cfg->api.rate_calls = 2;
    cfg->api.rate_window_ms = 1000;
    cfg->api.margin_ms = 25;
    cfg->api.endpoint = HQ_ENDPOINT_ROUTE;
    cfg->api.timeout_ms = 10000;
    cfg->deliver.timeout_ms = 30000;
    cfg->deliver.breaker = 5;
    cfg->deliver.probe_min_ms = 5000;
    cfg->deliver.probe_max_ms = 60000;
    if (!cfg->redis.ns || !cfg->redis.sentinel_master || !cfg->redis.data_dir || !cfg->intake.listen ||
        !cfg->intake.path || !cfg->intake.customer || !cfg->admin.listen ||
        !cfg->api.base_url)
        return HQ_ENOMEM;
    return HQ_OK;
}

static int
key_line(const struct loader *L, const char *section, const char *name)
{
    const struct keydef *k = find_key(section, name);
    return k ? L->set_at[k - keys] : 0;
}

static void
validate(struct loader *L)
{
    struct hq__config *cfg = L->cfg;

    for (size_t i = 0; i < cfg->nevents; i++) {
        struct hq__event_cfg *ev = &cfg->events[i];
        if (ev->deliver == NULL && L->ev_deliver_at[i] == 0)
            add_error(L,
                      "%s:%d: [event %s] deliver: missing: each event needs "
                      "deliver = http://..., exec:/path, log or log:FILE",
                      L->file, ev->line, ev->code);
        if (ev->on_failure < 0)
            ev->on_failure = cfg->worker.on_failure;
        if (ev->timeout_ms < 0)
            ev->timeout_ms = cfg->deliver.timeout_ms;
    }
    if (cfg->redis.sentinels != NULL && cfg->redis.url != NULL &&
        strncmp(cfg->redis.url, "unix://", 7) == 0) {
        struct origin o = {L->file, key_line(L, "redis", "sentinels"), NULL};
        origin_error(L, &o, "redis", "sentinels",
                     "cannot go with a unix:// url: the Sentinels name a "
                     "host and port");
    } else if (cfg->redis.sentinels != NULL && cfg->redis.url != NULL &&
               strchr(cfg->redis.url, ',') != NULL) {
        struct origin o = {L->file, key_line(L, "redis", "sentinels"), NULL};
        origin_error(L, &o, "redis", "sentinels",
                     "cannot go with a url of several hosts (a Redis "
                     "Cluster finds its masters itself)");
    }
    if (cfg->redis.wait_replicas > 0 && cfg->redis.url == NULL &&
        cfg->redis.sentinels == NULL) {
        struct origin o = {L->file, key_line(L, "redis", "wait_replicas"), NULL};
        origin_error(L, &o, "redis", "wait_replicas",
                     "needs a [redis] url: the embedded Redis of hookq run has "
                     "no replicas to wait for");
    }
    if (cfg->admin.listen != NULL && cfg->intake.listen != NULL &&
        strcmp(cfg->admin.listen, cfg->intake.listen) == 0) {
        struct origin o = {L->file, key_line(L, "admin", "listen"), NULL};
        origin_error(L, &o, "admin", "listen",
                     "must differ from [intake] listen (the admin listener "
                     "never shares the intake port)");
    }
}

static void
event_free(struct hq__event_cfg *ev)
{
    for (size_t j = 0; j < ev->nfetch; j++)
        free(ev->fetch[j]);
    free(ev->fetch);
    free(ev->deliver);
    free(ev->secret);
    free(ev->code);
}

void
hq__config_free(struct hq__config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->nevents; i++)
        event_free(&cfg->events[i]);
    free(cfg->events);
    free(cfg->path);
    free(cfg->redis.url);
    free(cfg->redis.ns);
    free(cfg->redis.sentinels);
    free(cfg->redis.sentinel_master);
    free(cfg->redis.data_dir);
    free(cfg->intake.listen);
    free(cfg->intake.path);
    free(cfg->intake.customer);
    free(cfg->intake.secret);
    free(cfg->admin.listen);
    free(cfg->admin.token);
    free(cfg->api.base_url);
    free(cfg->api.token_command);
    free(cfg->deliver.secret);
    free(cfg);
}

int
hq__config_defaults(struct hq__config **out)
{
    struct hq__config *cfg = calloc(1, sizeof(*cfg));

    *out = NULL;
    if (cfg == NULL)
        return HQ_ENOMEM;
    if (set_defaults(cfg) != HQ_OK) {
        hq__config_free(cfg);
        return HQ_ENOMEM;
    }
    *out = cfg;
    return HQ_OK;
}

const char *
hq__config_find(char **envp, const char *system_path, int *from_env)
{
    extern char **environ;
    char **e = envp ? envp : environ;

    *from_env = 0;
    for (; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, "HOOKQ_CONFIG=", 13) == 0 && (*e)[13] != '\0') {
            /* Named on purpose: a missing file is an error, not skipped. */
            *from_env = 1;
            return *e + 13;
        }
    }
    if (access("hookq.ini", F_OK) == 0)
        return "hookq.ini";
    if (system_path != NULL && access(system_path, F_OK) == 0)
        return system_path;
    return NULL;
}

int
hq__config_load(const char *path, char **envp, struct hq__config **out,
                char *err, size_t errsize)
{
    struct loader L;
    struct hq__config *cfg = NULL;
    int rc, from_env = 0;

    memset(&L, 0, sizeof(L));
    L.err = err;
    L.errsize = errsize;
    if (err != NULL && errsize > 0)
        err[0] = '\0';
    *out = NULL;

    rc = hq__config_defaults(&cfg);
    if (rc != HQ_OK)
        goto nomem;
    L.cfg = cfg;

    if (path == NULL)
        path = hq__config_find(envp, HQ_SYSTEM_CONFIG, &from_env);
    if (path != NULL) {
        L.file = path;
        cfg->path = strdup(path);
        if (cfg->path == NULL)
            goto nomem;
        L.fp = fopen(path, "r");
        if (L.fp == NULL) {
            int e = errno;
            add_error(&L, "%s%s: cannot open: %s", path,
                      from_env ? " (from $HOOKQ_CONFIG)" : "", strerror(e));
            rc = HQ_EIO;
            goto fail;
        }
        /*
         * inih hands its buffer size to the reader; Debian's build takes it
         * from this global at run time (default 200). Long URLs need more.
         */
        if (ini_max_line < LINE_MAX_LEN)
            ini_max_line = LINE_MAX_LEN;
        ini_parse_stream(reader, &L, handler, &L);
        if (ferror(L.fp)) {
            add_error(&L, "%s: read error", path);
            rc = HQ_EIO;
            goto fail;
        }
        fclose(L.fp);
        L.fp = NULL;
    } else {
        L.file = "(defaults)";
    }
    if (L.nomem)
        goto nomem;
    apply_env(&L, envp);
    validate(&L);
    if (L.nomem)
        goto nomem;
    if (L.nerr > MAX_ERRORS) {
        int total = L.nerr;
        L.nerr = -1;
        add_error(&L, "... and %d more errors", total - MAX_ERRORS);
        L.nerr = total;
    }
    if (L.nerr > 0) {
        rc = HQ_ECONFIG;
        goto fail;
    }
    free(L.line);
    free(L.ev_deliver_at);
    free(L.ev_policy_at);
    *out = cfg;
    return HQ_OK;

nomem:
    rc = HQ_ENOMEM;
    if (err != NULL && errsize > 0)
        snprintf(err, errsize,
                 "out of memory while loading the configuration\n");
fail:
    if (L.fp != NULL)
        fclose(L.fp);
    free(L.line);
    free(L.ev_deliver_at);
    free(L.ev_policy_at);
    hq__config_free(cfg);
    return rc;
}

const struct hq__event_cfg *
hq__config_event(const struct hq__config *cfg, const char *code, size_t len)
{
    const struct hq__event_cfg *any = NULL;

    for (size_t i = 0; i < cfg->nevents; i++) {
        const char *c = cfg->events[i].code;
        if (strncmp(c, code, len) == 0 && c[len] == '\0')
            return &cfg->events[i];
        if (strcmp(c, "*") == 0)
            any = &cfg->events[i];
    }
    return any;
}

void
hq__config_worker_options(const struct hq__config *cfg,
                          struct hq_worker_options *o)
{
    o->concurrency = cfg->worker.concurrency;
    o->threads = cfg->worker.threads;
    o->lease_ms = cfg->worker.lease_ms;
    o->max_attempts = cfg->worker.max_attempts;
    o->backoff_min_ms = cfg->worker.backoff_min_ms;
    o->backoff_max_ms = cfg->worker.backoff_max_ms;
    o->on_failure = cfg->worker.on_failure;
    o->shutdown_timeout_ms = cfg->worker.shutdown_timeout_ms;
}
