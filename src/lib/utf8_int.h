/*
 * UTF-8 checks for text that goes into JSON (see utf8.c).
 */
#ifndef HQ_UTF8_INT_H
#define HQ_UTF8_INT_H

#include <stddef.h>

/*
 * The length (1-4) of the valid UTF-8 sequence at `s` (`len` > 0 bytes
 * available), or 0 when the byte at `s` does not start one.
 */
size_t hq__utf8_seq(const unsigned char *s, size_t len);

/*
 * A NUL-terminated copy of `s` with every byte that does not start a valid
 * sequence replaced by U+FFFD; its length in `*outlen` (if non-NULL). NUL
 * bytes are kept as they are (JSON escapes them). The caller frees it;
 * NULL when out of memory.
 */
char *hq__utf8_sanitize(const char *s, size_t len, size_t *outlen);

#endif /* HQ_UTF8_INT_H */
