/*
 * The daemon's log (see log.h). Each line is built in a stack buffer and
 * written with a single write(2) to stderr: no lock, and no interleaving of
 * lines from the intake, worker and admin threads.
 *
 * Values often come from webhooks (a key, a customer), so they may hold any
 * bytes. A JSON line is always valid JSON in valid UTF-8: quotes, backslash
 * and control characters are escaped, and a byte that does not start a
 * valid UTF-8 sequence becomes U+FFFD. A text line stays one line and
 * shows such bytes as \xNN inside a quoted value. The fields of log.h's
 * numeric names (pid, attempt, ms, ...) are JSON numbers when their value
 * is one.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config_int.h"
#include "log.h"
#include "utf8_int.h"

#include "banned_int.h"

static int log_format = HQ_LOG_TEXT;
static int log_max_level = 2; /* info */

void
hk_log_init(int format, int max_level)
{
    log_format = format;
    log_max_level = max_level;
}

int
hq__log_format(void)
{
    return log_format;
}

int
hk_log_enabled(int level)
{
    return level <= log_max_level;
}

const char *
hk_log_level_name(int level)
{
    switch (level) {
    case 0:
        return "error";
    case 1:
        return "warn";
    case 2:
        return "info";
    default:
        return "debug";
    }
}

/*
 * A line being built. Content stops at TAIL_ROOM bytes before the end, so
 * that a cut line can still be closed: the quote of the string that was
 * cut, ,"truncated":true, the brace and the newline.
 */
#define TAIL_ROOM 24
struct line {
    char buf[HQ_LOGLINE_MAX];
    size_t len;
    int cut; /* something did not fit */
};

static size_t
room(const struct line *l)
{
    return sizeof(l->buf) - TAIL_ROOM - l->len;
}

static void
put(struct line *l, const char *s, size_t n)
{
    if (n > room(l)) {
        n = room(l);
        l->cut = 1;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

/* Into the tail room: only the closing bytes of a line. */
static void
put_tail(struct line *l, const char *s)
{
    size_t n = strlen(s);

    if (n > sizeof(l->buf) - 1 - l->len)
        n = sizeof(l->buf) - 1 - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void
puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

/*
 * A quoted string with JSON escapes. A byte that is not UTF-8 becomes
 * U+FFFD (`text` 0: JSON) or \xNN (`text` 1: a text line, where the bytes
 * themselves are the most useful thing to show). A sequence cut by the end
 * of the line's room is dropped whole.
 */
static void
put_quoted(struct line *l, const char *s, int text)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);

    put(l, "\"", 1);
    for (size_t i = 0; i < len && !l->cut;) {
        unsigned char c = p[i];
        size_t n = hq__utf8_seq(p + i, len - i);
        char esc[8];

        if (room(l) < 7) { /* the longest piece: \u00XX, or 4 bytes */
            l->cut = 1;
            break;
        }
        if (n == 0) {
            if (text) {
                snprintf(esc, sizeof(esc), "\\x%02x", c);
                put(l, esc, 4);
            } else {
                put(l, "\\ufffd", 6);
            }
            i++;
            continue;
        }
        if (n > 1) {
            put(l, s + i, n);
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(l, esc, 2);
        } else if (c == '\n') {
            put(l, "\\n", 2);
        } else if (c == '\r') {
            put(l, "\\r", 2);
        } else if (c == '\t') {
            put(l, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(l, esc, 6);
        } else {
            put(l, (const char *)&c, 1);
        }
        i += n;
    }
    put_tail(l, "\"");
}

static void
put_json_string(struct line *l, const char *s)
{
    put_quoted(l, s, 0);
}

/*
 * A text value: bare when it is printable UTF-8 without a blank, quote or
 * '=', else quoted.
 */
static void
put_text_value(struct line *l, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    int plain = len > 0;

    for (size_t i = 0; plain && i < len;) {
        size_t n = hq__utf8_seq(p + i, len - i);

        if (n == 0 || p[i] == ' ' || p[i] == '"' || p[i] == '=' ||
            p[i] == '\\' || p[i] < 0x20 || p[i] == 0x7f)
            plain = 0;
        i += n ? n : 1;
    }
    if (plain)
        puts_(l, s);
    else
        put_quoted(l, s, 1);
}

/*
 * A message in text: control characters become blanks and bytes that are
 * not UTF-8 '?', one line always.
 */
static void
put_text_msg(struct line *l, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);

    for (size_t i = 0; i < len;) {
        size_t n = hq__utf8_seq(p + i, len - i);

        if (n == 0 || p[i] < 0x20 || p[i] == 0x7f) {
            put(l, p[i] < 0x20 || p[i] == 0x7f ? " " : "?", 1);
            i++;
        } else {
            if (room(l) < n) {
                l->cut = 1;
                break;
            }
            put(l, s + i, n);
            i += n;
        }
    }
}

/* Fields whose value is written as a JSON number when it is one. */
static int
numeric_name(const char *key)
{
    static const char *const names[] = {
        "pid", "attempt", "ms", "wait_ms", "seq", "status", "port", "percent",
        "loaded_bytes", "total_bytes", "eta_s", "jobs", "leases", "loop",
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(key, names[i]) == 0)
            return 1;
    return 0;
}

/* A JSON number as we write them: -?D+(.D+)?, at most 24 characters. */
static int
is_number(const char *s)
{
    const char *p = s;

    if (*p == '-')
        p++;
    if (*p < '0' || *p > '9' || strlen(s) > 24)
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

static void
begin(struct line *l, int level, const char *msg)
{
    struct timespec ts;
    struct tm tm;
    char stamp[64];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000));
    l->len = 0;
    l->cut = 0;
    if (log_format == HQ_LOG_JSON) {
        puts_(l, "{\"ts\":\"");
        puts_(l, stamp);
        puts_(l, "\",\"level\":\"");
        puts_(l, hk_log_level_name(level));
        puts_(l, "\",\"msg\":");
        put_json_string(l, msg);
    } else {
        char lv[8];
        snprintf(lv, sizeof(lv), "%-5s", hk_log_level_name(level));
        puts_(l, stamp);
        puts_(l, " ");
        puts_(l, lv);
        puts_(l, " ");
        put_text_msg(l, msg);
    }
}

static void
field(struct line *l, const char *key, const char *value)
{
    int number = numeric_name(key) && is_number(value);

    /* A field goes in whole, but for the end of a long string value. */
    if (l->cut || room(l) < strlen(key) + 8 + (number ? strlen(value) : 8)) {
        l->cut = 1;
        return;
    }
    if (log_format == HQ_LOG_JSON) {
        puts_(l, ",");
        put_json_string(l, key);
        puts_(l, ":");
        if (number)
            puts_(l, value);
        else
            put_json_string(l, value);
    } else {
        puts_(l, " ");
        puts_(l, key);
        puts_(l, "=");
        put_text_value(l, value);
    }
}

static void
finish(struct line *l)
{
    const char *p;
    size_t left;

    if (log_format == HQ_LOG_JSON) {
        /* The tail room holds these: a cut line is still one JSON object. */
        if (l->cut)
            put_tail(l, ",\"truncated\":true");
        put_tail(l, "}");
    } else if (l->cut) {
        put_tail(l, " ...");
    }
    put_tail(l, "\n");
    l->len = l->len < sizeof(l->buf) ? l->len : sizeof(l->buf);
    for (p = l->buf, left = l->len; left > 0;) {
        ssize_t n = write(STDERR_FILENO, p, left);
        if (n <= 0)
            return; /* nowhere to report it */
        p += n;
        left -= (size_t)n;
    }
}

void
hk_log(int level, const char *fmt, ...)
{
    struct line l;
    char msg[HQ_LOGLINE_MAX - 128];
    va_list ap;

    if (!hk_log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    begin(&l, level, msg);
    finish(&l);
}

void
hk_log_kv(int level, const char *msg, ...)
{
    struct line l;
    va_list ap;
    const char *k;

    if (!hk_log_enabled(level))
        return;
    begin(&l, level, msg);
    va_start(ap, msg);
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        if (v != NULL)
            field(&l, k, v);
    }
    va_end(ap);
    finish(&l);
}

void
hk_log_fields(int level, const char *msg, const char *const *fields)
{
    struct line l;

    if (!hk_log_enabled(level))
        return;
    begin(&l, level, msg);
    for (size_t i = 0; fields != NULL && fields[i] != NULL; i += 2)
        if (fields[i + 1] != NULL)
            field(&l, fields[i], fields[i + 1]);
    finish(&l);
}

void
hk_log_kv_sink(int level, const char *msg, const char *const *fields, void *arg)
{
    const char *f[48];
    size_t n = 0;

    if (!hk_log_enabled(level))
        return;
    for (; fields != NULL && fields[n] != NULL && n + 4 < sizeof(f) / sizeof(f[0]);
         n += 2) {
        f[n] = fields[n];
        f[n + 1] = fields[n + 1];
    }
    f[n++] = "from";
    f[n++] = arg ? (const char *)arg : "lib";
    f[n] = NULL;
    hk_log_fields(level, msg, f);
}

void
hk_log_sink(int level, const char *msg, void *arg)
{
    if (!hk_log_enabled(level))
        return;
    hk_log_kv(level, msg, "from", arg ? (const char *)arg : "lib", NULL);
}

const char *
hk_log_mask(const char *secret, char *buf, size_t size)
{
    if (secret == NULL || secret[0] == '\0')
        snprintf(buf, size, "(none)");
    else
        snprintf(buf, size, "<redacted %zu chars>", strlen(secret));
    return buf;
}

const char *
hk_log_mask_url(const char *url, char *buf, size_t size)
{
    const char *scheme, *at, *colon, *slash;

    if (url == NULL) {
        snprintf(buf, size, "(none)");
        return buf;
    }
    scheme = strstr(url, "://");
    if (scheme == NULL) {
        snprintf(buf, size, "%s", url);
        return buf;
    }
    scheme += 3;
    slash = strchr(scheme, '/');
    at = strchr(scheme, '@');
    if (at == NULL || (slash != NULL && at > slash)) {
        snprintf(buf, size, "%s", url);
        return buf;
    }
    /* user:password@ or :password@ or password@ */
    colon = memchr(scheme, ':', (size_t)(at - scheme));
    if (colon != NULL)
        snprintf(buf, size, "%.*s:***%s", (int)(colon - url), url, at);
    else
        snprintf(buf, size, "%.*s***%s", (int)(scheme - url), url, at);
    return buf;
}
