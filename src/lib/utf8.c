/*
 * UTF-8 checks for text that came from outside (webhook keys, customers,
 * error messages that quote them) on its way into JSON: the log, the admin
 * API, `--json` output. JSON must be valid UTF-8 (RFC 8259 §8.1); whatever
 * bytes a webhook carried, we write a well-formed document and keep as much
 * of the text as is readable. One rule everywhere: a byte that does not
 * start a valid sequence (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF) is replaced by U+FFFD.
 */
#include <stdlib.h>
#include <string.h>

#include "utf8_int.h"

size_t
hq__utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else
        return 0;
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

char *
hq__utf8_sanitize(const char *s, size_t len, size_t *outlen)
{
    const unsigned char *p = (const unsigned char *)s;
    char *out = malloc(len * 3 + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t n = hq__utf8_seq(p + i, len - i);

        if (n == 0) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(o, p + i, n);
            o += n;
            i += n;
        }
    }
    *o = '\0';
    if (outlen)
        *outlen = (size_t)(o - out);
    return out;
}
