/*
 * Configuration: DESIGN §3.2. The INI file is read with inih, then every
 * HOOKQ_<SECTION>_<KEY> variable overrides its key, then cross-field checks
 * run. Nothing stops at the first problem: every error is collected, one per
 * line, as "FILE:LINE: [section] key: what is wrong" (or "$HOOKQ_X: ..." for
 * a variable), so that `hookq check` can show them all at once.
 *
 * DESIGN: keys are described by one table (section, name, kind, field
 * offsets, bounds, default), and [event] keys by a second one of the same
 * form. A key's kind says how its text is parsed and into what typed field:
 * apply() parses a value once, from the file, from a HOOKQ_* variable or
 * from the table's default alike, and its consumers read the field (a
 * duration in ms, a listen address split, a secret decoded, fetch lines as
 * templates, the redis url as a store address), never the text again.
 * value_release() frees a field by its kind, so hq__config_free() walks the
 * tables. Cross-field checks, and what one key adds to another's value
 * (the sentinels to the redis address, [deliver]'s timeout to an event's),
 * run in validate() once everything is read. inih only reports the line of
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
#include "deliver_int.h"
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

/*
 * The typed values. Each parse_*() reads the text `v` into the value its
 * consumers use and returns 0; or returns -1 with the reason in `why`
 * (HQ_ENOMEM when out of memory), leaving nothing to release.
 */

static int
parse_listen(const char *v, struct hq__listen_addr *a, char *why, size_t n)
{
    if (hq__addr_split(v, a->host, sizeof(a->host), &a->port) == 0)
        return 0;
    snprintf(why, n,
             "invalid address '%s': expected HOST:PORT, e.g. 127.0.0.1:8080 "
             "or [::1]:8080",
             v);
    return -1;
}

static int
parse_redis_url(const char *v, struct hq__store_addr *addr, char *why,
                size_t n)
{
    struct hq__err err;

    if ((strncmp(v, "redis://", 8) == 0 && v[8] != '\0') ||
        (strncmp(v, "unix:///", 8) == 0 && v[8] != '\0')) {
        /* The rest as the store reads it (port, db, lengths). */
        if (hq__store_parse_url(v, 0, addr, &err) == HQ_OK)
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

/* "host:port[,host:port...]", every port given; `name` is the key's. */
static int
parse_hostports(const char *v, const char *name, struct hq__hostport_list *l,
                char *why, size_t n)
{
    struct hq__err err;
    size_t nl = strlen(name);

    if (hq__store_parse_hostports(v, strlen(v), name, 1, l->v, &l->n, &err) ==
        HQ_OK)
        return 0;
    /* "sentinels: ..." is said by the key name already. */
    snprintf(why, n, "%s",
             strncmp(err.msg, name, nl) == 0 && strncmp(err.msg + nl, ": ", 2) == 0
                 ? err.msg + nl + 2 : err.msg);
    return -1;
}

/* [redis] sentinel_user: an ACL user name, as AUTH takes it. */
static int
check_sentinel_user(const char *v, char *why, size_t n)
{
    if (strlen(v) > 127) {
        snprintf(why, n, "must be 1 to 127 characters");
        return -1;
    }
    for (const char *p = v; *p; p++) {
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p)) {
            snprintf(why, n, "invalid user '%s': no spaces or control characters",
                     v);
            return -1;
        }
    }
    return 0;
}

/* [redis] sentinel_password: what the Sentinels' requirepass says. The
 * reasons never quote it. */
static int
check_sentinel_password(const char *v, char *why, size_t n)
{
    if (strlen(v) > 255) {
        snprintf(why, n, "too long: at most 255 characters");
        return -1;
    }
    for (const char *p = v; *p; p++) {
        if (iscntrl((unsigned char)*p)) {
            snprintf(why, n, "must not contain control characters");
            return -1;
        }
    }
    return 0;
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
        char origin[600];

        for (const char *p = v; *p; p++)
            if (isspace((unsigned char)*p))
                goto bad;
        /* The origin names the target's circuit breaker: a url without a
         * readable host[:port] has none, so it is refused here. */
        if (hq__url_origin(v, origin, sizeof(origin)) != HQ_OK)
            goto bad;
        return 0;
    }
bad:
    snprintf(why, n, "invalid url '%s': expected http://host[:port][/path]", v);
    return -1;
}

/*
 * A checked http(s) URL into `u`: without its trailing '/', and its origin
 * (check_http_url() made sure it has one). 0, or HQ_ENOMEM.
 */
static int
parse_http_url(const char *v, struct hq__http_url *u)
{
    char origin[600];
    size_t n = strlen(v);

    while (n > 0 && v[n - 1] == '/')
        n--;
    u->url = strndup(v, n);
    if (hq__url_origin(u->url ? u->url : "", origin, sizeof(origin)) != HQ_OK)
        origin[0] = '\0';
    u->origin = strdup(origin);
    if (u->url == NULL || u->origin == NULL) {
        free(u->url);
        free(u->origin);
        return HQ_ENOMEM;
    }
    return 0;
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
parse_customer(const char *v, struct hq__customer_spec *spec, char *why,
               size_t n)
{
    struct hq__err err;
    int rc;

    if (strncmp(v, "header:", 7) == 0) {
        if (v[7] == '\0')
            goto bad;
        for (const char *p = v + 7; *p; p++)
            if (!isgraph((unsigned char)*p) || *p == ':')
                goto bad;
    } else if (v[0] != '/') {
        goto bad;
    }
    /* A pointer's '~' must be followed by 0 or 1. */
    rc = hq__customer_spec_init(spec, v, &err);
    if (rc == HQ_OK)
        return 0;
    hq__customer_spec_release(spec);
    snprintf(why, n, "invalid customer: %s", err.msg);
    return rc == HQ_ENOMEM ? HQ_ENOMEM : -1;
bad:
    snprintf(why, n,
             "invalid customer '%s': expected a JSON pointer such as "
             "/data/customer_id, or header:NAME",
             v);
    return -1;
}

/* Free a decoded secret, wiping it first. */
static void
secret_free(struct hq__sig_key *key)
{
    if (key == NULL)
        return;
    explicit_bzero(key, sizeof(*key));
    free(key);
}

static int
parse_secret(const char *v, struct hq__sig_key **out, char *why, size_t n)
{
    const char *b = strncmp(v, "whsec_", 6) == 0 ? v + 6 : v;
    size_t len = strlen(b);
    struct hq__sig_key *key;
    struct hq__err err;

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
     * The decoding refuses what the loop above lets through: a length that
     * is not a multiple of 4 ("whsec_abc"), a key over HQ_SIG_KEY_MAX bytes.
     */
    key = malloc(sizeof(*key));
    if (key == NULL) {
        snprintf(why, n, "out of memory");
        return HQ_ENOMEM;
    }
    if (hq__sig_key_parse(v, key, &err) != HQ_OK) {
        secret_free(key);
        goto bad;
    }
    *out = key;
    return 0;
bad:
    /* Never echo the secret. */
    snprintf(why, n, "invalid secret: expected whsec_ followed by base64");
    return -1;
}

/* ------------------------------------------------------------------------ */
/* The table of keys.                                                       */

/*
 * What a key's value is, and so how its text is parsed and into what field.
 * `off` (and `off2`) are the offsets of that field in the struct the key
 * belongs to: struct hq__config, or struct hq__event_cfg for [event] keys.
 */
enum kind {
    K_STR,       /* char *: the text, with an optional check */
    K_LISTEN,    /* struct hq__listen_addr: HOST:PORT or [V6]:PORT */
    K_UINT,      /* unsigned, min..max */
    K_INT,       /* int, min..max */
    K_I64,       /* int64_t, min..max */
    K_DURATION,  /* int64_t ms, min..max */
    K_SIZE,      /* size_t bytes, min..max */
    K_RANGE,     /* two int64_t ms MIN..MAX: off, off2 */
    K_RATE,      /* R/W: int calls at off, int64_t window ms at off2 */
    K_ENUM,      /* one of `names`; stored as its index (an int) */
    K_SECRET,    /* struct hq__sig_key *: whsec_<base64>, decoded */
    K_CUSTOMER,  /* struct hq__customer_spec: JSON pointer or header:NAME */
    K_REDIS_URL, /* char * at off, its struct hq__store_addr at off2 */
    K_HOSTPORTS, /* struct hq__hostport_list: host:port[,host:port...] */
    K_FETCH,     /* struct hq__template ** at off, size_t count at off2;
                    each line adds one */
    K_DELIVER,   /* char * at off, its struct hq__deliver * at off2 */
    K_HTTP_URL,  /* struct hq__http_url: http(s)://host[:port][/path] */
};

enum key_flags {
    KF_OPTIONAL = 1 << 0, /* an empty value unsets the key */
    KF_OFF = 1 << 1,      /* K_LISTEN: "off" unsets the key */
    KF_SECRET = 1 << 2,   /* K_STR: wiped when released; its check never
                             echoes it */
};

struct keydef {
    const char *section; /* "" = top level; "event" = every [event CODE] */
    const char *name;
    enum kind kind;
    size_t off;
    size_t off2;
    int64_t min;
    int64_t max;
    int (*check)(const char *v, char *why, size_t n); /* K_STR */
    const char *const *names; /* K_ENUM: the values, NULL-terminated */
    unsigned flags;           /* enum key_flags */
    const char *def;          /* the default, parsed as a value; NULL = unset */
};

/* The values of the enum-valued keys, in the order of their C enums. */
static const char *const policy_names[] = {"deadletter", "hold", NULL};
static const char *const endpoint_names[] = {"route", "url", NULL};
static const char *const logfmt_names[] = {"text", "json", NULL};
static const char *const loglevel_names[] = {"error", "warn", "info", "debug",
                                             NULL};

#define F(field) offsetof(struct hq__config, field)

/* Every key of the file but [event]'s, with DESIGN §3.2's defaults. */
static const struct keydef keys[] = {
    {"", "log_format", K_ENUM, .off = F(log_format), .names = logfmt_names,
     .def = "text"},
    {"", "log_level", K_ENUM, .off = F(log_level), .names = loglevel_names,
     .def = "info"},

    {"redis", "url", K_REDIS_URL, .off = F(redis.url), .off2 = F(redis.addr),
     .flags = KF_OPTIONAL},
    {"redis", "sentinels", K_HOSTPORTS, .off = F(redis.sentinels),
     .flags = KF_OPTIONAL},
    {"redis", "sentinel_master", K_STR, .off = F(redis.sentinel_master),
     .check = check_sentinel_master, .def = "hookq"},
    {"redis", "sentinel_user", K_STR, .off = F(redis.sentinel_user),
     .check = check_sentinel_user, .flags = KF_OPTIONAL},
    {"redis", "sentinel_password", K_STR, .off = F(redis.sentinel_password),
     .check = check_sentinel_password, .flags = KF_OPTIONAL | KF_SECRET},
    {"redis", "namespace", K_STR, .off = F(redis.ns), .check = check_namespace,
     .def = "hookq"},
    {"redis", "shards", K_UINT, .off = F(redis.shards), .min = 1,
     .max = HQ_SHARDS_MAX, .def = "1"},
    {"redis", "data_dir", K_STR, .off = F(redis.data_dir),
     .check = check_nonempty, .def = "./hookq-data"},
    {"redis", "wait_replicas", K_UINT, .off = F(redis.wait_replicas), .min = 0,
     .max = 100, .def = "0"},
    {"redis", "wait_timeout", K_DURATION, .off = F(redis.wait_timeout_ms),
     .min = 1, .max = 60000, .def = "500ms"},

    {"intake", "listen", K_LISTEN, .off = F(intake.listen),
     .def = "127.0.0.1:8080"},
    {"intake", "path", K_STR, .off = F(intake.path), .check = check_path,
     .def = "/webhook"},
    {"intake", "customer", K_CUSTOMER, .off = F(intake.customer),
     .def = "/data/customer_id"},
    {"intake", "max_body", K_SIZE, .off = F(intake.max_body), .min = 1,
     .max = 1024LL << 20, .def = "1MiB"},
    {"intake", "max_header", K_SIZE, .off = F(intake.max_header), .min = 1024,
     .max = 1LL << 20, .def = "16KiB"},
    {"intake", "header_timeout", K_DURATION, .off = F(intake.header_timeout_ms),
     .min = 1, .max = INT64_MAX, .def = "10s"},
    {"intake", "idle_timeout", K_DURATION, .off = F(intake.idle_timeout_ms),
     .min = 1, .max = INT64_MAX, .def = "60s"},
    {"intake", "max_key_depth", K_I64, .off = F(intake.max_key_depth),
     .min = 0, .max = INT64_MAX, .def = "100000"},
    {"intake", "secret", K_SECRET, .off = F(intake.secret),
     .flags = KF_OPTIONAL},
    {"intake", "dedup_ttl", K_DURATION, .off = F(intake.dedup_ttl_ms),
     .min = 1000, .max = INT64_MAX, .def = "24h"},
    {"intake", "threads", K_UINT, .off = F(intake.threads), .min = 1,
     .max = 256, .def = "2"},
    {"intake", "max_connections", K_UINT, .off = F(intake.max_connections),
     .min = 1, .max = 1000000, .def = "1024"},

    {"admin", "listen", K_LISTEN, .off = F(admin.listen), .flags = KF_OFF,
     .def = "127.0.0.1:8081"},
    {"admin", "token", K_STR, .off = F(admin.token), .flags = KF_OPTIONAL},

    {"worker", "concurrency", K_UINT, .off = F(worker.concurrency), .min = 1,
     .max = 1000000, .def = "64"},
    {"worker", "threads", K_UINT, .off = F(worker.threads), .min = 1,
     .max = 256, .def = "2"},
    {"worker", "lease", K_DURATION, .off = F(worker.lease_ms), .min = 1000,
     .max = INT64_MAX, .def = "30s"},
    {"worker", "max_attempts", K_INT, .off = F(worker.max_attempts), .min = 1,
     .max = 1000000, .def = "12"},
    {"worker", "backoff", K_RANGE, .off = F(worker.backoff_min_ms),
     .off2 = F(worker.backoff_max_ms), .def = "5s..1h"},
    {"worker", "on_failure", K_ENUM, .off = F(worker.on_failure),
     .names = policy_names, .def = "deadletter"},
    {"worker", "shutdown_timeout", K_DURATION,
     .off = F(worker.shutdown_timeout_ms), .min = 0, .max = INT64_MAX,
     .def = "30s"},

    {"api", "base_url", K_HTTP_URL, .off = F(api.base_url),
     .def = "http://127.0.0.1:9000"},
    {"api", "rate", K_RATE, .off = F(api.rate_calls),
     .off2 = F(api.rate_window_ms), .def = "2/1s"},
    {"api", "margin", K_DURATION, .off = F(api.margin_ms), .min = 0,
     .max = INT64_MAX, .def = "25ms"},
    {"api", "endpoint", K_ENUM, .off = F(api.endpoint), .names = endpoint_names,
     .def = "route"},
    {"api", "timeout", K_DURATION, .off = F(api.timeout_ms), .min = 1,
     .max = INT64_MAX, .def = "10s"},
    {"api", "token_command", K_STR, .off = F(api.token_command),
     .check = check_program, .flags = KF_OPTIONAL},

    {"deliver", "secret", K_SECRET, .off = F(deliver.secret),
     .flags = KF_OPTIONAL},
    {"deliver", "timeout", K_DURATION, .off = F(deliver.timeout_ms), .min = 1,
     .max = INT64_MAX, .def = "30s"},
    {"deliver", "breaker", K_INT, .off = F(deliver.breaker), .min = 0,
     .max = 1000000, .def = "5"},
    {"deliver", "probe", K_RANGE, .off = F(deliver.probe_min_ms),
     .off2 = F(deliver.probe_max_ms), .def = "5s..1m"},
};

#undef F

#define E(field) offsetof(struct hq__event_cfg, field)

/*
 * The keys of an [event CODE] section. Unset, on_failure and timeout are
 * [worker]'s and [deliver]'s (validate() fills them in), and secret is
 * [deliver]'s (its consumer reads both).
 */
static const struct keydef event_keys[] = {
    {"event", "fetch", K_FETCH, .off = E(fetch), .off2 = E(nfetch)},
    {"event", "deliver", K_DELIVER, .off = E(deliver), .off2 = E(deliver_to)},
    {"event", "on_failure", K_ENUM, .off = E(on_failure),
     .names = policy_names},
    {"event", "secret", K_SECRET, .off = E(secret)},
    {"event", "timeout", K_DURATION, .off = E(timeout_ms), .min = 1,
     .max = INT64_MAX},
};

#undef E

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
    unsigned char from_env[HQ_ARRAY_SIZE(keys)]; /* 1: a variable set it last */
    /* Per event, the line each of its keys was set on (fetch: not kept). */
    int (*ev_set_at)[HQ_ARRAY_SIZE(event_keys)];

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

    if (is_event) {
        for (size_t i = 0; i < HQ_ARRAY_SIZE(event_keys); i++) {
            size_t d = edit_distance(name, event_keys[i].name);
            if (d < bestd) {
                bestd = d;
                best = event_keys[i].name;
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

/* Release the value of key `k` in `obj` and leave it unset (zero). */
static void
value_release(const struct keydef *k, char *obj)
{
    switch (k->kind) {
    case K_STR:
    case K_REDIS_URL: {
        char **text = (char **)(obj + k->off);
        if ((k->flags & KF_SECRET) && *text != NULL)
            explicit_bzero(*text, strlen(*text));
        free(*text);
        *text = NULL;
        break;
    }
    case K_HTTP_URL: {
        struct hq__http_url *u = (struct hq__http_url *)(obj + k->off);
        free(u->url);
        free(u->origin);
        u->url = u->origin = NULL;
        break;
    }
    case K_DELIVER: {
        char **text = (char **)(obj + k->off);
        struct hq__deliver **d = (struct hq__deliver **)(obj + k->off2);
        free(*text);
        *text = NULL;
        hq__deliver_free(*d);
        *d = NULL;
        break;
    }
    case K_LISTEN: {
        struct hq__listen_addr *a = (struct hq__listen_addr *)(obj + k->off);
        free(a->text);
        memset(a, 0, sizeof(*a));
        break;
    }
    case K_SECRET: {
        struct hq__sig_key **key = (struct hq__sig_key **)(obj + k->off);
        secret_free(*key);
        *key = NULL;
        break;
    }
    case K_CUSTOMER:
        hq__customer_spec_release((struct hq__customer_spec *)(obj + k->off));
        break;
    case K_HOSTPORTS: {
        struct hq__hostport_list *l = (struct hq__hostport_list *)(obj + k->off);
        free(l->text);
        memset(l, 0, sizeof(*l));
        break;
    }
    case K_FETCH: {
        struct hq__template ***t = (struct hq__template ***)(obj + k->off);
        size_t *count = (size_t *)(obj + k->off2);
        for (size_t i = 0; i < *count; i++)
            hq__template_free((*t)[i]);
        free(*t);
        *t = NULL;
        *count = 0;
        break;
    }
    default:
        break; /* numbers: nothing held */
    }
}

static int parse_fetch(const char *v, struct hq__template **out, char *why,
                       size_t n);
static int parse_deliver(const char *v, struct hq__deliver **out, char *why,
                         size_t n);

/*
 * Parse `v` as key `k` into its field of `obj` (the config, or an event for
 * [event] keys), releasing what the field held. On a bad value the field is
 * left as it was and the error is reported at `o`, under `section`.
 */
static void
apply(struct loader *L, const struct keydef *k, const char *section,
      void *obj, const char *v, const struct origin *o)
{
    char *base = obj;
    char why[512];
    int64_t n;
    const char *end;
    int rc;

    why[0] = '\0';
    if (((k->flags & KF_OPTIONAL) && v[0] == '\0') ||
        ((k->flags & KF_OFF) && strcmp(v, "off") == 0)) {
        value_release(k, base);
        return;
    }
    switch (k->kind) {
    case K_STR: {
        char *copy;

        if (k->check == NULL && v[0] == '\0') {
            snprintf(why, sizeof(why), "must not be empty");
            break;
        }
        if (k->check != NULL && k->check(v, why, sizeof(why)) != 0)
            break;
        if ((copy = xstrdup(L, v)) == NULL)
            return;
        value_release(k, base);
        *(char **)(base + k->off) = copy;
        return;
    }
    case K_LISTEN: {
        struct hq__listen_addr a;

        memset(&a, 0, sizeof(a));
        if (parse_listen(v, &a, why, sizeof(why)) != 0)
            break;
        if ((a.text = xstrdup(L, v)) == NULL)
            return;
        value_release(k, base);
        *(struct hq__listen_addr *)(base + k->off) = a;
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
    case K_SECRET: {
        struct hq__sig_key *key = NULL;

        rc = parse_secret(v, &key, why, sizeof(why));
        if (rc != 0)
            goto bad;
        value_release(k, base);
        *(struct hq__sig_key **)(base + k->off) = key;
        return;
    }
    case K_CUSTOMER: {
        struct hq__customer_spec spec;

        rc = parse_customer(v, &spec, why, sizeof(why));
        if (rc != 0)
            goto bad;
        value_release(k, base);
        *(struct hq__customer_spec *)(base + k->off) = spec;
        return;
    }
    case K_REDIS_URL: {
        struct hq__store_addr addr;
        char *copy;

        if (parse_redis_url(v, &addr, why, sizeof(why)) != 0)
            break;
        if ((copy = xstrdup(L, v)) == NULL)
            return;
        value_release(k, base);
        *(char **)(base + k->off) = copy;
        *(struct hq__store_addr *)(base + k->off2) = addr;
        return;
    }
    case K_HOSTPORTS: {
        struct hq__hostport_list l;

        memset(&l, 0, sizeof(l));
        if (parse_hostports(v, k->name, &l, why, sizeof(why)) != 0)
            break;
        if ((l.text = xstrdup(L, v)) == NULL)
            return;
        value_release(k, base);
        *(struct hq__hostport_list *)(base + k->off) = l;
        return;
    }
    case K_HTTP_URL: {
        struct hq__http_url u;

        if (check_http_url(v, why, sizeof(why)) != 0)
            break;
        if (parse_http_url(v, &u) != 0) {
            L->nomem = 1;
            return;
        }
        value_release(k, base);
        *(struct hq__http_url *)(base + k->off) = u;
        return;
    }
    case K_DELIVER: {
        struct hq__deliver *d = NULL;
        char *copy;

        rc = parse_deliver(v, &d, why, sizeof(why));
        if (rc != 0)
            goto bad;
        if ((copy = xstrdup(L, v)) == NULL) {
            hq__deliver_free(d);
            return;
        }
        value_release(k, base);
        *(char **)(base + k->off) = copy;
        *(struct hq__deliver **)(base + k->off2) = d;
        return;
    }
    case K_FETCH: {
        struct hq__template ***t = (struct hq__template ***)(base + k->off);
        size_t *count = (size_t *)(base + k->off2);
        struct hq__template *tpl = NULL, **grown;

        rc = parse_fetch(v, &tpl, why, sizeof(why));
        if (rc != 0)
            goto bad;
        grown = realloc(*t, (*count + 1) * sizeof(*grown));
        if (grown == NULL) {
            hq__template_free(tpl);
            L->nomem = 1;
            return;
        }
        grown[(*count)++] = tpl;
        *t = grown;
        return;
    }
    }
    origin_error(L, o, section, k->name, why);
    return;
bad:
    if (rc == HQ_ENOMEM)
        L->nomem = 1;
    else
        origin_error(L, o, section, k->name, why);
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

/* A fetch line "METHOD /path/{data.x}", parsed into its template. */
static int
parse_fetch(const char *v, struct hq__template **out, char *why, size_t n)
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
     * The template parser refuses what the checks above let through: a
     * control character in the path, a '{' inside a placeholder.
     */
    {
        struct hq__err err;
        int rc = hq__template_parse(v, out, &err);

        if (rc != HQ_OK) {
            *out = NULL;
            snprintf(why, n, "invalid fetch '%s': %s", v, err.msg);
            return rc == HQ_ENOMEM ? HQ_ENOMEM : -1;
        }
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

/* A deliver line, parsed into its target (log:FILE is not opened here). */
static int
parse_deliver(const char *v, struct hq__deliver **out, char *why, size_t n)
{
    struct hq__err err;
    int rc;

    if (strncmp(v, "http://", 7) == 0 || strncmp(v, "https://", 8) == 0) {
        if (check_http_url(v, why, n) != 0)
            return -1;
    } else if (strncmp(v, "exec:", 5) == 0) {
        if (v[5] != '/') {
            snprintf(why, n,
                     "invalid deliver '%s': exec needs an absolute "
                     "path, exec:/path/to/program",
                     v);
            return -1;
        }
    } else if (strncmp(v, "log:", 4) == 0) {
        if (v[4] == '\0') {
            snprintf(why, n, "invalid deliver '%s': log: needs a file name", v);
            return -1;
        }
    } else if (strcmp(v, "log") != 0) {
        snprintf(why, n,
                 "invalid deliver '%s': expected http://..., exec:/path, "
                 "log or log:FILE",
                 v);
        return -1;
    }
    rc = hq__deliver_parse(v, out, &err);
    if (rc != HQ_OK) {
        snprintf(why, n, "invalid deliver '%s': %s", v, err.msg);
        return rc == HQ_ENOMEM ? HQ_ENOMEM : -1;
    }
    return 0;
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
    int (*at)[HQ_ARRAY_SIZE(event_keys)];

    for (size_t i = 0; i < cfg->nevents; i++)
        if (strcmp(cfg->events[i].code, code) == 0)
            return &cfg->events[i];
    evs = realloc(cfg->events, (cfg->nevents + 1) * sizeof(*evs));
    if (evs == NULL)
        goto nomem;
    cfg->events = evs;
    at = realloc(L->ev_set_at, (cfg->nevents + 1) * sizeof(*at));
    if (at == NULL)
        goto nomem;
    L->ev_set_at = at;
    memset(&evs[cfg->nevents], 0, sizeof(*evs));
    memset(&at[cfg->nevents], 0, sizeof(*at));
    evs[cfg->nevents].code = xstrdup(L, code);
    if (evs[cfg->nevents].code == NULL)
        return NULL;
    evs[cfg->nevents].on_failure = -1;
    evs[cfg->nevents].timeout_ms = -1;
    evs[cfg->nevents].line = line;
    return &evs[cfg->nevents++];
nomem:
    L->nomem = 1;
    return NULL;
}

/*
 * Key `k` written on the line of `o`: refused if `*set_at` says it was
 * written before (but fetch, which may repeat), else applied to `obj`.
 */
static void
set_key(struct loader *L, const struct keydef *k, const char *section,
        void *obj, int *set_at, const char *value, const struct origin *o)
{
    if (k->kind != K_FETCH) {
        if (*set_at) {
            char why[64];
            snprintf(why, sizeof(why), "set twice (first on line %d)", *set_at);
            origin_error(L, o, section, k->name, why);
            return;
        }
        *set_at = o->line;
    }
    apply(L, k, section, obj, value, o);
}

static void
event_key(struct loader *L, const char *section, const char *name,
          const char *value, const struct origin *o)
{
    size_t idx = (size_t)(L->ev - L->cfg->events);

    for (size_t i = 0; i < HQ_ARRAY_SIZE(event_keys); i++) {
        if (strcmp(event_keys[i].name, name) == 0) {
            set_key(L, &event_keys[i], section, L->ev, &L->ev_set_at[idx][i],
                    value, o);
            return;
        }
    }
    unknown_key(L, o, section, name);
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
    set_key(L, k, section, L->cfg, &L->set_at[k - keys], value, &o);
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
                apply(L, &keys[i], keys[i].section, L->cfg, eq + 1, &o);
                L->from_env[i] = 1;
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

/* The table's defaults, each parsed as a value of the file would be. */
static void
apply_defaults(struct loader *L)
{
    struct origin o = {"(defaults)", 0, NULL};

    for (size_t i = 0; i < HQ_ARRAY_SIZE(keys); i++)
        if (keys[i].def != NULL)
            apply(L, &keys[i], keys[i].section, L->cfg, keys[i].def, &o);
}

static int
key_line(const struct loader *L, const char *section, const char *name)
{
    const struct keydef *k = find_key(section, name);
    return k ? L->set_at[k - keys] : 0;
}

/* The index of the [event] key `name` (one of event_keys). */
static size_t
event_key_index(const char *name)
{
    size_t i = 0;

    while (strcmp(event_keys[i].name, name) != 0)
        i++;
    return i;
}

/* Where key `name` of `section` was set, for a cross-key error: its
 * variable when one set it (a variable wins over the file), else its line
 * in the file. */
static void
key_origin(const struct loader *L, const char *section, const char *name,
           struct origin *o, char *var, size_t size)
{
    const struct keydef *k = find_key(section, name);

    o->file = L->file;
    o->line = k ? L->set_at[k - keys] : 0;
    o->env = NULL;
    if (k && L->from_env[k - keys]) {
        env_name(k, var, size);
        o->env = var;
    }
}

/*
 * [redis] sentinel_user and sentinel_password: for the Sentinels only, so
 * without `sentinels` they are a mistake (the url's user:password@ is the
 * data nodes'), said naming both keys; a user needs a password.
 */
static void
sentinel_auth(struct loader *L)
{
    struct hq__config *cfg = L->cfg;
    struct hq__store_addr *a = &cfg->redis.addr;
    const char *user = cfg->redis.sentinel_user;
    const char *pw = cfg->redis.sentinel_password;
    struct origin o;
    char var[128];

    if (user == NULL && pw == NULL)
        return;
    if (cfg->redis.sentinels.text == NULL) {
        const char *name = pw ? "sentinel_password" : "sentinel_user";

        key_origin(L, "redis", name, &o, var, sizeof(var));
        origin_error(L, &o, "redis", name,
                     "set, but [redis] sentinels is not: it is sent to the "
                     "Sentinels only (the url's user:password@ is for Redis "
                     "itself); set [redis] sentinels or remove it");
        return;
    }
    if (pw == NULL) {
        key_origin(L, "redis", "sentinel_user", &o, var, sizeof(var));
        origin_error(L, &o, "redis", "sentinel_user",
                     "needs [redis] sentinel_password (AUTH user password)");
        return;
    }
    snprintf(a->sentinel_user, sizeof(a->sentinel_user), "%s", user ? user : "");
    snprintf(a->sentinel_password, sizeof(a->sentinel_password), "%s", pw);
}

static void
validate(struct loader *L)
{
    struct hq__config *cfg = L->cfg;
    size_t deliver_idx = event_key_index("deliver");

    for (size_t i = 0; i < cfg->nevents; i++) {
        struct hq__event_cfg *ev = &cfg->events[i];
        if (ev->deliver == NULL && L->ev_set_at[i][deliver_idx] == 0)
            add_error(L,
                      "%s:%d: [event %s] deliver: missing: each event needs "
                      "deliver = http://..., exec:/path, log or log:FILE",
                      L->file, ev->line, ev->code);
        if (ev->on_failure < 0)
            ev->on_failure = cfg->worker.on_failure;
        if (ev->timeout_ms < 0)
            ev->timeout_ms = cfg->deliver.timeout_ms;
    }
    if (cfg->redis.sentinels.text != NULL && cfg->redis.url != NULL &&
        strncmp(cfg->redis.url, "unix://", 7) == 0) {
        struct origin o = {L->file, key_line(L, "redis", "sentinels"), NULL};
        origin_error(L, &o, "redis", "sentinels",
                     "cannot go with a unix:// url: the Sentinels name a "
                     "host and port");
    } else if (cfg->redis.sentinels.text != NULL && cfg->redis.url != NULL &&
               strchr(cfg->redis.url, ',') != NULL) {
        struct origin o = {L->file, key_line(L, "redis", "sentinels"), NULL};
        origin_error(L, &o, "redis", "sentinels",
                     "cannot go with a url of several hosts (a Redis "
                     "Cluster finds its masters itself)");
    } else if (cfg->redis.sentinels.text != NULL) {
        /*
         * The Sentinels name the master's host and port; without a url,
         * the address keeps the built-in one's database and no password.
         */
        struct hq__store_addr *a = &cfg->redis.addr;
        struct hq__err e;

        if (cfg->redis.url == NULL)
            hq__store_parse_url("redis://127.0.0.1:6379/0", 0, a, &e);
        a->nsentinels = cfg->redis.sentinels.n;
        memcpy(a->sentinels, cfg->redis.sentinels.v, sizeof(a->sentinels));
        snprintf(a->sentinel_master, sizeof(a->sentinel_master), "%s",
                 cfg->redis.sentinel_master);
    }
    sentinel_auth(L);
    if (cfg->redis.wait_replicas > 0 && cfg->redis.url == NULL &&
        cfg->redis.sentinels.text == NULL) {
        struct origin o = {L->file, key_line(L, "redis", "wait_replicas"), NULL};
        origin_error(L, &o, "redis", "wait_replicas",
                     "needs a [redis] url: the embedded Redis of hookq run has "
                     "no replicas to wait for");
    }
    if (cfg->admin.listen.text != NULL && cfg->intake.listen.text != NULL &&
        strcmp(cfg->admin.listen.text, cfg->intake.listen.text) == 0) {
        struct origin o = {L->file, key_line(L, "admin", "listen"), NULL};
        origin_error(L, &o, "admin", "listen",
                     "must differ from [intake] listen (the admin listener "
                     "never shares the intake port)");
    }
}

void
hq__config_free(struct hq__config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->nevents; i++) {
        for (size_t j = 0; j < HQ_ARRAY_SIZE(event_keys); j++)
            value_release(&event_keys[j], (char *)&cfg->events[i]);
        free(cfg->events[i].code);
    }
    free(cfg->events);
    for (size_t j = 0; j < HQ_ARRAY_SIZE(keys); j++)
        value_release(&keys[j], (char *)cfg);
    explicit_bzero(&cfg->redis.addr, sizeof(cfg->redis.addr));
    free(cfg->path);
    free(cfg);
}

int
hq__config_defaults(struct hq__config **out)
{
    struct loader L;

    *out = NULL;
    memset(&L, 0, sizeof(L));
    L.cfg = calloc(1, sizeof(*L.cfg));
    if (L.cfg == NULL)
        return HQ_ENOMEM;
    apply_defaults(&L);
    if (L.nomem || L.nerr > 0) {
        /* A default the table cannot parse is a bug, found by unit.config. */
        hq__config_free(L.cfg);
        return L.nomem ? HQ_ENOMEM : HQ_ECONFIG;
    }
    *out = L.cfg;
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
    free(L.ev_set_at);
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
    free(L.ev_set_at);
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
