/*
 * The webhook envelope: `{"code": "post-create", "data": {...}}` plus the
 * customer, found by an RFC 6901 JSON pointer into the body
 * (`intake.customer = /data/customer_id`) or in a request header
 * (`intake.customer = header:X-Customer`).
 *
 * Checks run in the order of DESIGN §3.3 and the first failure answers:
 * JSON syntax (jansson; nesting beyond its depth limit, invalid UTF-8 and a
 * top level that is not an object included) -> HQ_ENV_INVALID_JSON; `code`
 * absent or not a non-empty string -> HQ_ENV_MISSING_CODE; `data` absent ->
 * HQ_ENV_MISSING_DATA; customer absent, null, empty, or neither a string nor
 * an integer -> HQ_ENV_MISSING_CUSTOMER. An integer customer is kept as its
 * decimal text.
 */
#ifndef HQ_ENVELOPE_INT_H
#define HQ_ENVELOPE_INT_H

#include <stddef.h>

#include "common_int.h"

#define HQ_ENV_DETAIL_MAX 256

enum hq__env_result {
    HQ_ENV_OK = 0,
    HQ_ENV_INVALID_JSON,
    HQ_ENV_MISSING_CODE,
    HQ_ENV_MISSING_DATA,
    HQ_ENV_MISSING_CUSTOMER,
    HQ_ENV_NOMEM,
};

/* Where the customer is: a JSON pointer, or a header. */
struct hq__customer_spec {
    int from_header;   /* 1: `name` is a header name; 0: a JSON pointer */
    char *name;        /* the header name, or the pointer text ("" = root) */
    /* The pointer's reference tokens, unescaped (~1 -> /, ~0 -> ~). */
    size_t ntok;
    char **tok;
    size_t *toklen;
    long *tokidx;      /* the token as an array index, or -1 */
};

/*
 * Parse `intake.customer` ("/a/b~1c" or "header:NAME"). Returns HQ_OK, or
 * HQ_EINVAL with the reason in `err` (a pointer must be empty or start with
 * '/', and '~' must be followed by '0' or '1'), or HQ_ENOMEM.
 */
int hq__customer_spec_init(struct hq__customer_spec *spec, const char *text,
                           struct hq__err *err);
void hq__customer_spec_release(struct hq__customer_spec *spec);

struct hq__envelope {
    char *code;          /* NUL-terminated, never contains NUL */
    size_t code_len;
    char *customer;      /* NUL-terminated */
    size_t customer_len;
};

/*
 * Check `body` and fill `env` (released with hq__envelope_release(), also
 * after a failure). `header`/`header_len` is the value of the customer
 * header when spec->from_header (NULL when the request had none). Returns an
 * enum hq__env_result; on failure `detail` says what is wrong (for invalid
 * JSON: jansson's line, column and text).
 */
int hq__envelope_parse(const struct hq__customer_spec *spec, const char *body,
                       size_t len, const char *header, size_t header_len,
                       struct hq__envelope *env, char *detail,
                       size_t detailsize);
void hq__envelope_release(struct hq__envelope *env);

/*
 * The two halves of hq__envelope_parse(), for tests. The fast path (one
 * pass, no tree) returns 1 with `env` filled only for bodies that jansson
 * accepts with the same code and customer, else 0 (env empty); jansson's
 * path decides everything else and gives the error details.
 */
int hq__envelope_parse_fast(const struct hq__customer_spec *spec,
                            const char *body, size_t len, const char *header,
                            size_t header_len, struct hq__envelope *env);
int hq__envelope_parse_jansson(const struct hq__customer_spec *spec,
                               const char *body, size_t len,
                               const char *header, size_t header_len,
                               struct hq__envelope *env, char *detail,
                               size_t detailsize);

/* The error name of a result: "invalid_json", "missing_code", ... */
const char *hq__env_result_name(int result);

#endif /* HQ_ENVELOPE_INT_H */
