/*
 * The webhook envelope check (see envelope_int.h).
 *
 * DESIGN: the body is parsed once with jansson, which already rejects
 * invalid UTF-8, nesting deeper than JSON_PARSER_MAX_DEPTH and a top level
 * that is neither an object nor an array; we add "must be an object". Only
 * `code` and the customer are copied out: the job stored is the body exactly
 * as received, never a re-serialisation of it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "envelope_int.h"

#define HEADER_PREFIX "header:"

int
hq__customer_spec_init(struct hq__customer_spec *spec, const char *text,
                       struct hq__err *err)
{
    size_t plen = strlen(HEADER_PREFIX);

    memset(spec, 0, sizeof(*spec));
    if (text == NULL)
        text = "/data/customer_id";
    if (strncmp(text, HEADER_PREFIX, plen) == 0) {
        const char *name = text + plen;

        if (name[0] == '\0')
            return hq__err_set(err, HQ_EINVAL,
                               "customer '%s': the header name is empty", text);
        for (const char *p = name; *p; p++)
            if (*p <= ' ' || *p == ':' || *p == 127)
                return hq__err_set(err, HQ_EINVAL,
                                   "customer '%s': not a header name", text);
        spec->from_header = 1;
        spec->name = strdup(name);
    } else {
        if (text[0] != '\0' && text[0] != '/')
            return hq__err_set(err, HQ_EINVAL,
                               "customer '%s': a JSON pointer starts with '/' "
                               "(or write header:NAME)", text);
        for (const char *p = text; *p; p++)
            if (p[0] == '~' && p[1] != '0' && p[1] != '1')
                return hq__err_set(err, HQ_EINVAL,
                                   "customer '%s': '~' must be followed by "
                                   "'0' or '1' (RFC 6901)", text);
        spec->name = strdup(text);
    }
    if (spec->name == NULL)
        return hq__err_set(err, HQ_ENOMEM, "out of memory");
    return HQ_OK;
}

void
hq__customer_spec_release(struct hq__customer_spec *spec)
{
    free(spec->name);
    spec->name = NULL;
}

/* Decode one reference token of `ptr` starting at *pos into `tok`. */
static size_t
next_token(const char *ptr, size_t *pos, char *tok, size_t toksize)
{
    size_t n = 0, i = *pos;

    while (ptr[i] != '\0' && ptr[i] != '/') {
        char c = ptr[i];

        if (c == '~') {
            c = ptr[i + 1] == '1' ? '/' : '~';
            i++;
        }
        if (n + 1 < toksize)
            tok[n] = c;
        n++;
        i++;
    }
    *pos = i;
    tok[n < toksize ? n : toksize - 1] = '\0';
    return n;
}

/* An array index: "0" or digits without a leading zero. */
static int
parse_index(const char *tok, size_t len, size_t *out)
{
    size_t v = 0;

    if (len == 0 || len > 9 || (len > 1 && tok[0] == '0'))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (tok[i] < '0' || tok[i] > '9')
            return -1;
        v = v * 10 + (size_t)(tok[i] - '0');
    }
    *out = v;
    return 0;
}

/* Resolve an RFC 6901 pointer (already validated) in `root`. */
static json_t *
pointer_get(json_t *root, const char *ptr)
{
    json_t *cur = root;
    size_t pos = 0;
    char *tok;

    if (ptr[0] == '\0')
        return root;
    tok = malloc(strlen(ptr) + 1);
    if (tok == NULL)
        return NULL;
    while (cur != NULL && ptr[pos] == '/') {
        size_t len, idx;

        pos++;
        len = next_token(ptr, &pos, tok, strlen(ptr) + 1);
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, tok, len);
        } else if (json_is_array(cur)) {
            cur = parse_index(tok, len, &idx) == 0 ? json_array_get(cur, idx)
                                                   : NULL;
        } else {
            cur = NULL;
        }
    }
    free(tok);
    return cur;
}

static char *
dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

int
hq__envelope_parse(const struct hq__customer_spec *spec, const char *body,
                   size_t len, const char *header, size_t header_len,
                   struct hq__envelope *env, char *detail, size_t detailsize)
{
    json_error_t jerr;
    json_t *root, *code, *cust = NULL;
    int rc;

    memset(env, 0, sizeof(*env));
    detail[0] = '\0';
    root = json_loadb(body, len, 0, &jerr);
    if (root == NULL) {
        snprintf(detail, detailsize, "line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return HQ_ENV_INVALID_JSON;
    }
    if (!json_is_object(root)) {
        snprintf(detail, detailsize, "the body is a JSON %s, not an object",
                 json_is_array(root) ? "array" : "value");
        rc = HQ_ENV_INVALID_JSON;
        goto out;
    }

    code = json_object_get(root, "code");
    if (!json_is_string(code) || json_string_length(code) == 0) {
        snprintf(detail, detailsize, "%s",
                 code == NULL ? "\"code\" is absent"
                              : "\"code\" is not a non-empty string");
        rc = HQ_ENV_MISSING_CODE;
        goto out;
    }
    if (json_object_get(root, "data") == NULL) {
        snprintf(detail, detailsize, "\"data\" is absent");
        rc = HQ_ENV_MISSING_DATA;
        goto out;
    }

    if (spec->from_header) {
        if (header == NULL || header_len == 0) {
            snprintf(detail, detailsize, "header %.100s is absent or empty",
                     spec->name);
            rc = HQ_ENV_MISSING_CUSTOMER;
            goto out;
        }
        env->customer = dup_n(header, header_len);
        env->customer_len = header_len;
    } else {
        cust = pointer_get(root, spec->name);
        if (json_is_string(cust) && json_string_length(cust) > 0) {
            env->customer = dup_n(json_string_value(cust),
                                  json_string_length(cust));
            env->customer_len = json_string_length(cust);
        } else if (json_is_integer(cust)) {
            char num[32];
            int n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                             json_integer_value(cust));

            env->customer = dup_n(num, (size_t)n);
            env->customer_len = (size_t)n;
        } else {
            snprintf(detail, detailsize, "%.100s %s", spec->name,
                     cust == NULL || json_is_null(cust)
                         ? "is absent or null"
                         : "is not a non-empty string or an integer");
            rc = HQ_ENV_MISSING_CUSTOMER;
            goto out;
        }
    }
    env->code = dup_n(json_string_value(code), json_string_length(code));
    env->code_len = json_string_length(code);
    if (env->code == NULL || env->customer == NULL) {
        rc = HQ_ENV_NOMEM;
        goto out;
    }
    rc = HQ_ENV_OK;
out:
    json_decref(root);
    return rc;
}

void
hq__envelope_release(struct hq__envelope *env)
{
    free(env->code);
    free(env->customer);
    memset(env, 0, sizeof(*env));
}

const char *
hq__env_result_name(int result)
{
    switch (result) {
    case HQ_ENV_OK: return "ok";
    case HQ_ENV_INVALID_JSON: return "invalid_json";
    case HQ_ENV_MISSING_CODE: return "missing_code";
    case HQ_ENV_MISSING_DATA: return "missing_data";
    case HQ_ENV_MISSING_CUSTOMER: return "missing_customer";
    }
    return "out_of_memory";
}
