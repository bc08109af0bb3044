/*
 * JSON whose numbers keep their exact text (DESIGN §3.3: `data` may hold
 * any valid JSON, numbers of any size or precision included, and every
 * number reaches the delivery with its exact decimal text).
 *
 * jansson 2.14 reads a number into a json_int_t or a double and refuses one
 * that does not fit ("too big integer", "real number overflow"); it cannot
 * keep a number's text either. hookq never computes with the numbers of a
 * webhook: it checks the body, reads `code` and the customer, fills fetch
 * templates, and hands `data` on. So:
 *
 * - hq__json_loadb_exact() reads any RFC 8259 text: when jansson refuses a
 *   number as too large, the number is read as a string holding its text
 *   (an integer) or as 0.0 (a real too large for a double; its text is
 *   kept by the next point, and nothing reads its value). The tree is for
 *   lookups only.
 * - hq__json_member_raw() copies a top-level member's value out of the
 *   original bytes, insignificant whitespace removed: what the delivery
 *   carries as `data`, every number exactly as the sender wrote it.
 */
#ifndef HQ_JSON_EXACT_INT_H
#define HQ_JSON_EXACT_INT_H

#include <stddef.h>

#include <jansson.h>

/*
 * json_loadb(buf, len, flags, err), except that numbers too large for
 * jansson do not fail the parse (see above). On failure `err` is jansson's,
 * its line and column those of `buf` as given.
 */
json_t *hq__json_loadb_exact(const char *buf, size_t len, size_t flags,
                             json_error_t *err);

/*
 * The value of member `key` of the JSON object `buf` (the last one when the
 * key appears more than once, as jansson reads it), compacted: no
 * whitespace outside strings, every other byte as in `buf`. `buf` must be
 * valid JSON (as hq__json_loadb_exact() accepts). Returns a malloc'd,
 * NUL-terminated copy in *out (length in *outlen), or NULL in *out when the
 * member is absent; -1 when `buf` is not a JSON object or out of memory.
 */
int hq__json_member_raw(const char *buf, size_t len, const char *key,
                        char **out, size_t *outlen);

/*
 * Compact `buf` (one JSON value): no whitespace outside strings. Writes at
 * most `len` bytes to `out` and returns their number.
 */
size_t hq__json_compact(const char *buf, size_t len, char *out);

#endif /* HQ_JSON_EXACT_INT_H */
