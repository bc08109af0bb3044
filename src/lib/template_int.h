/*
 * Fetch templates: one `fetch` line of an [event CODE] section,
 * "GET /posts/{data.post_id}", parsed once and filled per job.
 *
 * A placeholder is `{customer}`, `{code}` or `{data.a.b}` (a path into the
 * webhook's `data`; a segment that is a decimal number also indexes an
 * array). Filled values are percent-encoded (RFC 3986: everything but
 * A-Z a-z 0-9 - . _ ~), so a value never adds a path segment or a query
 * parameter. A field that is absent or null, or that is an object or an
 * array, cannot be filled: that is a permanent failure of the job, and the
 * message names the field.
 *
 * The route of a template is its method and its path with every
 * placeholder written `{}` ("GET /posts/{}"): the endpoint the rate limiter
 * counts calls against when api.endpoint = route.
 */
#ifndef HQ_TEMPLATE_INT_H
#define HQ_TEMPLATE_INT_H

#include <stddef.h>

#include <jansson.h>

#include "common_int.h"

struct hq__template;

/*
 * Parse "METHOD PATH" (METHOD defaults to GET when the line is only a path
 * starting with '/'). METHOD is upper case letters; PATH starts with '/'.
 * Returns HQ_OK and stores the template in `*out`, or HQ_EINVAL with the
 * reason in `err` ("unclosed '{' at column 12"), or HQ_ENOMEM.
 */
int hq__template_parse(const char *line, struct hq__template **out,
                       struct hq__err *err);
void hq__template_free(struct hq__template *t);

/* "GET"; owned by `t`. */
const char *hq__template_method(const struct hq__template *t);
/* "GET /posts/{}"; owned by `t`. */
const char *hq__template_route(const struct hq__template *t);

/*
 * Fill the template for one job. `data` is the webhook's "data" member
 * (borrowed, may be NULL when absent). On success stores a malloc'd path
 * ("/posts/17") in `*path` and returns HQ_OK. A field that cannot be filled
 * returns HQ_ENOTFOUND with `err` naming it ("missing field 'data.post_id'").
 */
int hq__template_fill(const struct hq__template *t, const json_t *data,
                      const char *customer, const char *code, char **path,
                      struct hq__err *err);

/*
 * Percent-encode `len` bytes of `s` into `out` (RFC 3986 unreserved
 * characters kept). Returns the encoded length, or (size_t)-1 when `size`
 * is too small; `out` is NUL-terminated on success. 3*len+1 always suffices.
 */
size_t hq__url_encode(const char *s, size_t len, char *out, size_t size);

#endif /* HQ_TEMPLATE_INT_H */
