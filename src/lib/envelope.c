/*
 * The webhook envelope check (see envelope_int.h).
 *
 * DESIGN: the body is parsed once with jansson, which already rejects
 * invalid UTF-8, nesting deeper than JSON_PARSER_MAX_DEPTH and a top level
 * that is neither an object nor an array; we add "must be an object". Only
 * `code` and the customer are copied out: the job stored is the body exactly
 * as received, never a re-serialisation of it. Numbers too large for
 * jansson are valid JSON all the same (json_exact.c): an integer customer
 * beyond 64 bits is kept as its digits.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "envelope_int.h"
#include "json_exact_int.h"

#define HEADER_PREFIX "header:"

static int split_pointer(struct hq__customer_spec *spec);

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
        if (spec->name != NULL && split_pointer(spec) != 0)
            return hq__err_set(err, HQ_ENOMEM, "out of memory");
    }
    if (spec->name == NULL)
        return hq__err_set(err, HQ_ENOMEM, "out of memory");
    return HQ_OK;
}

void
hq__customer_spec_release(struct hq__customer_spec *spec)
{
    for (size_t i = 0; i < spec->ntok; i++)
        free(spec->tok[i]);
    free(spec->tok);
    free(spec->toklen);
    free(spec->tokidx);
    free(spec->name);
    memset(spec, 0, sizeof(*spec));
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

/* Split spec->name into its unescaped reference tokens. */
static int
split_pointer(struct hq__customer_spec *spec)
{
    const char *ptr = spec->name;
    size_t n = 0, pos = 0, cap = strlen(ptr) + 1;

    for (const char *p = ptr; *p; p++)
        n += *p == '/';
    spec->tok = calloc(n + 1, sizeof(*spec->tok));
    spec->toklen = calloc(n + 1, sizeof(*spec->toklen));
    spec->tokidx = calloc(n + 1, sizeof(*spec->tokidx));
    if (spec->tok == NULL || spec->toklen == NULL || spec->tokidx == NULL)
        return -1;
    while (ptr[pos] == '/') {
        char *tok = malloc(cap);
        size_t len, idx;

        if (tok == NULL)
            return -1;
        pos++;
        len = next_token(ptr, &pos, tok, cap);
        spec->tok[spec->ntok] = tok;
        spec->toklen[spec->ntok] = len;
        spec->tokidx[spec->ntok] =
            parse_index(tok, len, &idx) == 0 ? (long)idx : -1;
        spec->ntok++;
    }
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

/* ------------------------------------------------------------------------ */
/*
 * The fast path. jansson builds a tree of the whole body, validating each
 * string byte by byte several times over: for a 1 KiB webhook that is a
 * third of the intake's CPU. Most bodies are plain, so one pass of our own
 * checks the syntax and finds `code`, `data` and the customer without
 * building anything. It answers only "plainly acceptable" (FAST_OK) or "let
 * jansson decide" (FAST_NO): any error, and anything where jansson's answer
 * could differ from a simple reading (escapes in the values we extract or in
 * keys we compare, \u0000 and lone surrogates, duplicate keys on the paths
 * we read, numbers that may overflow, very deep nesting, a pointer to the
 * root), goes to jansson, which gives the answer and the error detail. So
 * an accepted body is always one that jansson accepts with the same values.
 */

#define FAST_OK 1
#define FAST_NO 0
#define FAST_MAX_DEPTH 512

struct scan {
    const unsigned char *p, *end;
    const struct hq__customer_spec *spec;
    const char *code;
    size_t code_len;
    int code_seen, data_seen;
    int cust_kind;      /* 0 none, 1 string, 2 integer, 3 other */
    const char *cust;
    size_t cust_len;
};

static void
skip_ws(struct scan *s)
{
    while (s->p < s->end &&
           (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

/*
 * After a member of an object or array (closed by `close`): 1 when a ','
 * follows (skipped, the next member comes), 0 at `close` (skipped, the
 * container ends), -1 for anything else.
 */
static int
next_member(struct scan *s, char close)
{
    skip_ws(s);
    if (s->p >= s->end)
        return -1;
    if (*s->p == close) {
        s->p++;
        return 0;
    }
    if (*s->p != ',')
        return -1;
    s->p++;
    return 1;
}

/* One UTF-8 sequence starting at s->p (a byte >= 0x80), as jansson checks. */
static int
scan_utf8(struct scan *s)
{
    const unsigned char *p = s->p;
    unsigned char c = *p, lo = 0x80, hi = 0xBF;
    int n;

    if (c >= 0xC2 && c <= 0xDF)
        n = 1;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 2;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 3;
    else
        return FAST_NO;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (s->end - p <= n)
        return FAST_NO;
    if (p[1] < lo || p[1] > hi)
        return FAST_NO;
    for (int i = 2; i <= n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return FAST_NO;
    s->p += n + 1;
    return FAST_OK;
}

/* A string at s->p ('"'); its raw inside in (*str, *len), *esc if escaped. */
static int
scan_string(struct scan *s, const char **str, size_t *len, int *esc)
{
    const unsigned char *start = ++s->p;

    *esc = 0;
    while (s->p < s->end) {
        unsigned char c = *s->p;

        if (c == '"') {
            *str = (const char *)start;
            *len = (size_t)(s->p - start);
            s->p++;
            return FAST_OK;
        }
        if (c < 0x20)
            return FAST_NO;
        if (c == '\\') {
            *esc = 1;
            if (s->end - s->p < 2)
                return FAST_NO;
            c = s->p[1];
            if (c == 'u') {
                int v = 0;

                if (s->end - s->p < 6)
                    return FAST_NO;
                for (int i = 2; i < 6; i++) {
                    int h = hq__hexval(s->p[i]);

                    if (h < 0)
                        return FAST_NO;
                    v = v * 16 + h;
                }
                if (v == 0 || (v >= 0xD800 && v <= 0xDFFF))
                    return FAST_NO; /* jansson's rules: let it judge */
                s->p += 6;
            } else if (strchr("\"\\/bfnrt", c) != NULL && c != '\0') {
                s->p += 2;
            } else {
                return FAST_NO;
            }
        } else if (c >= 0x80) {
            if (scan_utf8(s) != FAST_OK)
                return FAST_NO;
        } else {
            s->p++;
        }
    }
    return FAST_NO;
}

/* A number; *is_int when it has no fraction or exponent. */
static int
scan_number(struct scan *s, int *is_int)
{
    const unsigned char *start = s->p;

    *is_int = 1;
    if (*s->p == '-')
        s->p++;
    if (s->p >= s->end)
        return FAST_NO;
    if (*s->p == '0') {
        s->p++;
    } else if (*s->p >= '1' && *s->p <= '9') {
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    } else {
        return FAST_NO;
    }
    if (s->p < s->end && *s->p == '.') {
        *is_int = 0;
        s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return FAST_NO;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E'))
        return FAST_NO; /* may overflow: jansson decides */
    if (s->p - start > 18)
        return FAST_NO;
    return FAST_OK;
}

static int scan_value(struct scan *s, int depth, size_t matched);

/*
 * The value at the customer pointer: `target` is 1 when the value being
 * scanned is the one the pointer names.
 */
static int
scan_target(struct scan *s, int depth, size_t matched, int target)
{
    const unsigned char *start = s->p;

    if (!target)
        return scan_value(s, depth, matched);
    if (s->cust_kind != 0)
        return FAST_NO; /* seen twice: duplicate keys, jansson's rules */
    if (*s->p == '"') {
        const char *str;
        size_t len;
        int esc;

        if (scan_string(s, &str, &len, &esc) != FAST_OK || esc)
            return FAST_NO;
        s->cust_kind = 1;
        s->cust = str;
        s->cust_len = len;
        return FAST_OK;
    }
    if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) {
        int is_int;

        if (scan_number(s, &is_int) != FAST_OK)
            return FAST_NO;
        s->cust_kind = is_int ? 2 : 3;
        s->cust = (const char *)start;
        s->cust_len = (size_t)(s->p - start);
        return FAST_OK;
    }
    s->cust_kind = 3;
    return scan_value(s, depth, (size_t)-1);
}

static int
scan_object(struct scan *s, int depth, size_t matched)
{
    const struct hq__customer_spec *spec = s->spec;
    /* This object is on the pointer's path when matched == depth - 1. */
    int on_path = matched != (size_t)-1 && matched == (size_t)depth - 1 &&
                  matched < spec->ntok;
    int path_key_seen = 0;

    s->p++; /* '{' */
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return FAST_OK;
    }
    for (;;) {
        const char *key;
        size_t klen;
        int esc, hit = 0, rc;

        skip_ws(s);
        if (s->p >= s->end || *s->p != '"')
            return FAST_NO;
        if (scan_string(s, &key, &klen, &esc) != FAST_OK)
            return FAST_NO;
        if (esc && (depth == 1 || on_path))
            return FAST_NO;
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':')
            return FAST_NO;
        s->p++;
        skip_ws(s);
        if (s->p >= s->end)
            return FAST_NO;

        if (on_path && klen == spec->toklen[matched] &&
            memcmp(key, spec->tok[matched], klen) == 0) {
            if (path_key_seen++)
                return FAST_NO;
            hit = 1;
        }
        if (depth == 1 && klen == 4 && memcmp(key, "code", 4) == 0) {
            if (s->code_seen++)
                return FAST_NO;
            if (*s->p == '"') {
                if (hit)
                    return FAST_NO; /* the customer is "code" itself: rare */
                if (scan_string(s, &s->code, &s->code_len, &esc) != FAST_OK ||
                    esc)
                    return FAST_NO;
                rc = FAST_OK;
            } else {
                return FAST_NO; /* not a string: missing_code, by jansson */
            }
        } else {
            if (depth == 1 && klen == 4 && memcmp(key, "data", 4) == 0) {
                if (s->data_seen++)
                    return FAST_NO;
            }
            if (hit)
                rc = scan_target(s, depth, matched + 1,
                                 matched + 1 == spec->ntok);
            else
                rc = scan_value(s, depth, (size_t)-1);
        }
        if (rc != FAST_OK)
            return FAST_NO;
        rc = next_member(s, '}');
        if (rc != 1)
            return rc == 0 ? FAST_OK : FAST_NO;
    }
}

static int
scan_array(struct scan *s, int depth, size_t matched)
{
    const struct hq__customer_spec *spec = s->spec;
    int on_path = matched != (size_t)-1 && matched == (size_t)depth - 1 &&
                  matched < spec->ntok;
    size_t idx = 0;
    int rc;

    s->p++; /* '[' */
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return FAST_OK;
    }
    for (;; idx++) {
        int hit = on_path && spec->tokidx[matched] == (long)idx;

        skip_ws(s);
        if (s->p >= s->end)
            return FAST_NO;
        if ((hit ? scan_target(s, depth, matched + 1, matched + 1 == spec->ntok)
                 : scan_value(s, depth, (size_t)-1)) != FAST_OK)
            return FAST_NO;
        rc = next_member(s, ']');
        if (rc != 1)
            return rc == 0 ? FAST_OK : FAST_NO;
    }
}

/* Any value; `depth` is that of the enclosing container. */
static int
scan_value(struct scan *s, int depth, size_t matched)
{
    const char *str;
    size_t len;
    int esc, is_int;

    if (s->p >= s->end)
        return FAST_NO;
    switch (*s->p) {
    case '{':
        if (depth + 1 > FAST_MAX_DEPTH)
            return FAST_NO;
        return scan_object(s, depth + 1, matched);
    case '[':
        if (depth + 1 > FAST_MAX_DEPTH)
            return FAST_NO;
        return scan_array(s, depth + 1, matched);
    case '"':
        return scan_string(s, &str, &len, &esc);
    case 't':
        if (s->end - s->p < 4 || memcmp(s->p, "true", 4) != 0)
            return FAST_NO;
        s->p += 4;
        return FAST_OK;
    case 'f':
        if (s->end - s->p < 5 || memcmp(s->p, "false", 5) != 0)
            return FAST_NO;
        s->p += 5;
        return FAST_OK;
    case 'n':
        if (s->end - s->p < 4 || memcmp(s->p, "null", 4) != 0)
            return FAST_NO;
        s->p += 4;
        return FAST_OK;
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return scan_number(s, &is_int);
        return FAST_NO;
    }
}

/* FAST_OK with env filled, or FAST_NO: ask jansson. */
static int
fast_parse(const struct hq__customer_spec *spec, const char *body, size_t len,
           const char *header, size_t header_len, struct hq__envelope *env)
{
    struct scan s;

    memset(&s, 0, sizeof(s));
    s.p = (const unsigned char *)body;
    s.end = s.p + len;
    s.spec = spec;
    if (!spec->from_header && spec->ntok == 0)
        return FAST_NO;
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{')
        return FAST_NO;
    if (scan_object(&s, 1, spec->from_header ? (size_t)-1 : 0) != FAST_OK)
        return FAST_NO;
    skip_ws(&s);
    if (s.p != s.end || !s.code_seen || s.code_len == 0 || !s.data_seen)
        return FAST_NO;
    if (spec->from_header) {
        if (header == NULL || header_len == 0)
            return FAST_NO;
        s.cust = header;
        s.cust_len = header_len;
    } else if (s.cust_kind == 1 && s.cust_len > 0) {
        /* as is */
    } else if (s.cust_kind == 2) {
        char num[32];
        long long v = strtoll(s.cust, NULL, 10);
        int n = snprintf(num, sizeof(num), "%lld", v);

        env->customer = dup_n(num, (size_t)n);
        env->customer_len = (size_t)n;
        s.cust = NULL;
    } else {
        return FAST_NO;
    }
    if (s.cust != NULL) {
        env->customer = dup_n(s.cust, s.cust_len);
        env->customer_len = s.cust_len;
    }
    env->code = dup_n(s.code, s.code_len);
    env->code_len = s.code_len;
    if (env->code == NULL || env->customer == NULL) {
        hq__envelope_release(env);
        return FAST_NO;
    }
    return FAST_OK;
}


int
hq__envelope_parse(const struct hq__customer_spec *spec, const char *body,
                   size_t len, const char *header, size_t header_len,
                   struct hq__envelope *env, char *detail, size_t detailsize)
{
    if (hq__envelope_parse_fast(spec, body, len, header, header_len, env)) {
        detail[0] = '\0';
        return HQ_ENV_OK;
    }
    return hq__envelope_parse_jansson(spec, body, len, header, header_len, env,
                                      detail, detailsize);
}

int
hq__envelope_parse_fast(const struct hq__customer_spec *spec, const char *body,
                        size_t len, const char *header, size_t header_len,
                        struct hq__envelope *env)
{
    memset(env, 0, sizeof(*env));
    return fast_parse(spec, body, len, header, header_len, env) == FAST_OK;
}

int
hq__envelope_parse_jansson(const struct hq__customer_spec *spec,
                           const char *body, size_t len, const char *header,
                           size_t header_len, struct hq__envelope *env,
                           char *detail, size_t detailsize)
{
    json_error_t jerr;
    json_t *root, *code, *cust = NULL;
    int rc;

    memset(env, 0, sizeof(*env));
    detail[0] = '\0';
    root = hq__json_loadb_exact(body, len, 0, &jerr);
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
