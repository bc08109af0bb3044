/*
 * Fuzz target for the Retry-After parser (hq__http_parse_retry_after,
 * adapters/curl_event.c): any header value an API sends with a 429, read
 * at a fixed clock.
 *
 * Beyond never crashing: the answer is -1 (malformed) or a delay >= 0. A
 * value of only digits (with spaces around) is delta-seconds: the answer is
 * exactly seconds * 1000 when that fits in an int64_t, else -1, never a
 * wrapped number.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curl_event_int.h"
#include "fuzz.h"

#define NOW INT64_C(1795735714) /* Thu, 26 Nov 2026 23:28:34 GMT, as in test_limiter */

/* seconds * 1000 of "  123  ", or -1 when it does not fit; -2: not digits. */
static int64_t
delta_ms(const char *s)
{
    uint64_t v = 0;
    int digits = 0, overflow = 0;

    while (*s == ' ')
        s++;
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        if (v > (UINT64_MAX - 9) / 10)
            overflow = 1;
        else
            v = v * 10 + (uint64_t)(*s - '0');
    }
    while (*s == ' ')
        s++;
    if (digits == 0 || *s != '\0')
        return -2;
    if (overflow || v > (uint64_t)INT64_MAX / 1000)
        return -1;
    return (int64_t)v * 1000;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value;
    int64_t ms, want;

    if (memchr(data, '\0', size) != NULL)
        return 0; /* a header value never holds a NUL */
    value = malloc(size + 1);
    if (value == NULL)
        abort();
    memcpy(value, data, size);
    value[size] = '\0';
    ms = hq__http_parse_retry_after(value, NOW);
    HQ_FUZZ_CHECK(ms >= -1, "'%s' gives %lld", value, (long long)ms);
    want = delta_ms(value);
    if (want != -2)
        HQ_FUZZ_CHECK(ms == want, "'%s' gives %lld, want %lld", value, (long long)ms,
                      (long long)want);
    free(value);
    return 0;
}
