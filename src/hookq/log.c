/*
 * The daemon's log (see log.h). Each line is built in a stack buffer and
 * written with a single write(2) to stderr: no lock, and no interleaving of
 * lines from the intake, worker and admin threads. JSON strings are escaped
 * here (control characters, quotes, backslash); invalid UTF-8 is passed on
 * as is, since messages are ours and values are short identifiers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config_int.h"
#include "log.h"

#include "banned_int.h"

static int log_format = HQ_LOG_TEXT;
static int log_max_level = 2; /* info */

void
hq_log_init(int format, int max_level)
{
    log_format = format;
    log_max_level = max_level;
}

int
hq_log_format(void)
{
    return log_format;
}

int
hq_log_enabled(int level)
{
    return level <= log_max_level;
}

const char *
hq_log_level_name(int level)
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

/* A line being built; `len` stops at `size - 2` to leave room for "\n". */
struct line {
    char buf[HQ_LOGLINE_MAX];
    size_t len;
};

static void
put(struct line *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 2 - l->len;
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void
puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

static void
put_json_string(struct line *l, const char *s)
{
    put(l, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(l, esc, 2);
        } else if (c == '\n') {
            put(l, "\\n", 2);
        } else if (c == '\t') {
            put(l, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(l, esc, 6);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
    put(l, "\"", 1);
}

/* A text value: bare when it has no blank, quote or '=', else quoted. */
static void
put_text_value(struct line *l, const char *s)
{
    int plain = *s != '\0';
    for (const char *p = s; *p; p++)
        if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20)
            plain = 0;
    if (plain)
        puts_(l, s);
    else
        put_json_string(l, s);
}

/* A message in text: control characters become blanks, one line always. */
static void
put_text_msg(struct line *l, const char *s)
{
    for (; *s; s++) {
        char c = (unsigned char)*s < 0x20 ? ' ' : *s;
        put(l, &c, 1);
    }
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
    if (log_format == HQ_LOG_JSON) {
        puts_(l, "{\"ts\":\"");
        puts_(l, stamp);
        puts_(l, "\",\"level\":\"");
        puts_(l, hq_log_level_name(level));
        puts_(l, "\",\"msg\":");
        put_json_string(l, msg);
    } else {
        char lv[8];
        snprintf(lv, sizeof(lv), "%-5s", hq_log_level_name(level));
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
    if (log_format == HQ_LOG_JSON) {
        puts_(l, ",");
        put_json_string(l, key);
        puts_(l, ":");
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
        /* A cut line would be invalid JSON: keep room for the brace. */
        if (l->len > sizeof(l->buf) - 3)
            l->len = sizeof(l->buf) - 3;
        l->buf[l->len++] = '}';
    }
    l->buf[l->len++] = '\n';
    for (p = l->buf, left = l->len; left > 0;) {
        ssize_t n = write(STDERR_FILENO, p, left);
        if (n <= 0)
            return; /* nowhere to report it */
        p += n;
        left -= (size_t)n;
    }
}

void
hq_log(int level, const char *fmt, ...)
{
    struct line l;
    char msg[HQ_LOGLINE_MAX - 128];
    va_list ap;

    if (!hq_log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    begin(&l, level, msg);
    finish(&l);
}

void
hq_log_kv(int level, const char *msg, ...)
{
    struct line l;
    va_list ap;
    const char *k;

    if (!hq_log_enabled(level))
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
hq_log_sink(int level, const char *msg, void *arg)
{
    if (!hq_log_enabled(level))
        return;
    hq_log_kv(level, msg, "from", arg ? (const char *)arg : "lib", NULL);
}

const char *
hq_log_mask(const char *secret, char *buf, size_t size)
{
    if (secret == NULL || secret[0] == '\0')
        snprintf(buf, size, "(none)");
    else
        snprintf(buf, size, "<redacted %zu chars>", strlen(secret));
    return buf;
}

const char *
hq_log_mask_url(const char *url, char *buf, size_t size)
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
