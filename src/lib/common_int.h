/*
 * Internal helpers shared by every file of the library: error detail
 * strings, small string buffers, and the banned footguns.
 */
#ifndef HQ_COMMON_INT_H
#define HQ_COMMON_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hookq/hookq.h"

#define HQ_ERRMSG_MAX 256

/* The value of one hexadecimal digit, or -1 (JSON's \uXXXX escapes). */
static inline int
hq__hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A last-error detail string kept by every handle. */
struct hq__err {
    char msg[HQ_ERRMSG_MAX];
};

/*
 * The library's one log function: format a line and hand it to `fn`
 * (hq_log_fn of hookq.h, levels HQ_LOG_ERROR .. HQ_LOG_DEBUG) with `arg`.
 * Nothing when `fn` is NULL. Lines are cut at 1 KiB.
 */
void hq__logf(hq_log_fn *fn, void *arg, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Format the detail of a failure into `e`; returns `rc` for tail calls. */
int hq__err_set(struct hq__err *e, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The longest API token: what a fetch's Authorization header carries. */
#define HQ_TOKEN_MAX 1000

#define HQ_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * A plain decimal number of 1 to 18 digits: no sign, no spaces, nothing
 * else (HTTP's Content-Length, a webhook-timestamp). 0 with the value in
 * `*out`, or -1.
 */
static inline int
hq__parse_decimal(const char *s, size_t len, int64_t *out)
{
    int64_t v = 0;

    if (len == 0 || len > 18)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/*
 * A signed decimal number as strtoll() reads it (leading blanks and a sign
 * allowed), with nothing after it: HQ_OK with the value in `*out`, or
 * HQ_EPROTO (empty, too long, or trailing bytes).
 */
static inline int
hq__parse_i64(const char *s, size_t len, int64_t *out)
{
    char buf[32];
    char *end;
    long long v;

    if (len == 0 || len >= sizeof(buf))
        return HQ_EPROTO;
    memcpy(buf, s, len);
    buf[len] = '\0';
    v = strtoll(buf, &end, 10);
    if (*end != '\0')
        return HQ_EPROTO;
    *out = v;
    return HQ_OK;
}

/*
 * Grow the buffer `*buf` of `*cap` bytes (doubling, from 1024) to hold at
 * least `need` bytes. 0, or -1 when out of memory (the buffer is kept).
 */
static inline int
hq__buf_reserve(char **buf, size_t *cap, size_t need)
{
    size_t n = *cap ? *cap : 1024;
    char *p;

    if (need <= *cap)
        return 0;
    while (n < need)
        n *= 2;
    p = realloc(*buf, n);
    if (p == NULL)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

#include "banned_int.h"

#endif /* HQ_COMMON_INT_H */
