/*
 * Differential fuzz target for the webhook envelope (envelope.c).
 *
 * Input: "SPEC\nBODY". SPEC is the `intake.customer` setting (a JSON
 * pointer or header:NAME); when it is not a valid one, or the input has no
 * newline, the whole input is the body and the customer is
 * /data/customer_id. A header customer always gets the value "h-1".
 *
 * Every input must give the same answer on the three ways to read it:
 * - hq__envelope_parse_fast() accepting a body means jansson accepts it,
 *   with the same code and customer (the claim of the unit test
 *   test_envelope_fast_path_agrees_with_jansson, over any bytes);
 * - hq__envelope_parse() (what intake calls) gives jansson's result, code
 *   and customer;
 * - jansson itself (json_loadb) says the body is a JSON object exactly when
 *   the result is not invalid_json, and its "code" is the code read; except
 *   that numbers too large for jansson are valid JSON (DESIGN §3.3): when
 *   jansson refuses the body for one, the result may be anything (it is
 *   invalid_json only for another error); for any other error it is
 *   invalid_json with jansson's own detail;
 * - whatever jansson reads, hq__json_loadb_exact() reads the same;
 * - for an accepted body, the exact text of `data` that the delivery
 *   carries (hq__json_member_raw()) reads as the same value as `data` in
 *   the body's tree, is compact (compacting it again changes nothing), and
 *   holds the body's number tokens of that span byte for byte.
 * Any disagreement abort()s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "envelope_int.h"
#include "fuzz.h"
#include "json_exact_int.h"

#define HEADER_VALUE "h-1"

static void
check_env(const struct hq__envelope *env, const char *what)
{
    HQ_FUZZ_CHECK(env->code != NULL && env->customer != NULL, "%s: empty", what);
    HQ_FUZZ_CHECK(env->code_len > 0 && strlen(env->code) == env->code_len,
                  "%s: code has a NUL or a wrong length", what);
    HQ_FUZZ_CHECK(env->customer_len > 0 &&
                      strlen(env->customer) == env->customer_len,
                  "%s: customer has a NUL or a wrong length", what);
}

static int
same_env(const struct hq__envelope *a, const struct hq__envelope *b)
{
    return a->code_len == b->code_len && a->customer_len == b->customer_len &&
           memcmp(a->code, b->code, a->code_len) == 0 &&
           memcmp(a->customer, b->customer, a->customer_len) == 0;
}

/* The number tokens of a JSON text, in order, joined by spaces. */
static size_t
numbers_of(const char *text, size_t len, char *out)
{
    size_t o = 0;
    int in_str = 0;

    for (size_t i = 0; i < len; i++) {
        char c = text[i];

        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '-' || (c >= '0' && c <= '9') ||
                   ((c == '.' || c == 'e' || c == 'E' || c == '+') && o > 0 &&
                    out[o - 1] != ' ')) {
            out[o++] = c;
        } else if (o > 0 && out[o - 1] != ' ') {
            out[o++] = ' ';
        }
    }
    return o;
}

/* The delivery's `data` against the tree's (see the top of the file). */
static void
check_data(const char *body, size_t len, json_t *data)
{
    char *raw, *again, *nb, *nr;
    size_t rlen, alen, nblen, nrlen;
    json_t *back;

    HQ_FUZZ_CHECK(hq__json_member_raw(body, len, "data", &raw, &rlen) == 0 &&
                      raw != NULL && data != NULL,
                  "the text of \"data\" is not found");
    back = hq__json_loadb_exact(raw, rlen, JSON_DECODE_ANY, NULL);
    HQ_FUZZ_CHECK(back != NULL && json_equal(back, data),
                  "the text of \"data\" reads as another value: %s", raw);
    json_decref(back);
    again = malloc(rlen + 1);
    nb = malloc(2 * len + 2);
    nr = malloc(2 * rlen + 2);
    HQ_FUZZ_CHECK(again && nb && nr, "out of memory");
    alen = hq__json_compact(raw, rlen, again);
    HQ_FUZZ_CHECK(alen == rlen && memcmp(again, raw, rlen) == 0,
                  "the text of \"data\" is not compact");
    /* Its numbers are among the body's, in order and byte for byte. */
    nblen = numbers_of(body, len, nb);
    nrlen = numbers_of(raw, rlen, nr);
    nb[nblen] = nr[nrlen] = '\0';
    HQ_FUZZ_CHECK(nrlen == 0 || strstr(nb, nr) != NULL,
                  "the numbers of \"data\" are not the body's: '%s' in '%s'",
                  nr, nb);
    free(again);
    free(nb);
    free(nr);
    free(raw);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    const char *body = in;
    size_t len = size;
    struct hq__customer_spec spec;
    struct hq__envelope fast, jans, full;
    struct hq__err err;
    char dj[HQ_ENV_DETAIL_MAX], df[HQ_ENV_DETAIL_MAX];
    int f, j, p;
    json_t *root, *exact;
    json_error_t jerr;

    memset(&spec, 0, sizeof(spec));
    if (nl != NULL && (size_t)(nl - in) < 256 && memchr(in, '\0', (size_t)(nl - in)) == NULL) {
        char text[256];

        memcpy(text, in, (size_t)(nl - in));
        text[nl - in] = '\0';
        if (hq__customer_spec_init(&spec, text, &err) == HQ_OK) {
            body = nl + 1;
            len = size - (size_t)(nl - in) - 1;
        } else {
            hq__customer_spec_release(&spec);
        }
    }
    if (spec.name == NULL &&
        hq__customer_spec_init(&spec, "/data/customer_id", &err) != HQ_OK)
        abort();

    f = hq__envelope_parse_fast(&spec, body, len, HEADER_VALUE,
                                strlen(HEADER_VALUE), &fast);
    j = hq__envelope_parse_jansson(&spec, body, len, HEADER_VALUE,
                                   strlen(HEADER_VALUE), &jans, dj, sizeof(dj));
    p = hq__envelope_parse(&spec, body, len, HEADER_VALUE, strlen(HEADER_VALUE),
                           &full, df, sizeof(df));
    HQ_FUZZ_CHECK(j != HQ_ENV_NOMEM && p != HQ_ENV_NOMEM, "out of memory");

    if (f) {
        check_env(&fast, "fast");
        HQ_FUZZ_CHECK(j == HQ_ENV_OK, "fast path accepted what jansson rejects: %s (%s)",
                      hq__env_result_name(j), dj);
        HQ_FUZZ_CHECK(same_env(&fast, &jans),
                      "fast path read code '%s' customer '%s', jansson '%s' '%s'",
                      fast.code, fast.customer, jans.code, jans.customer);
    }
    HQ_FUZZ_CHECK(p == j, "parse says %s, jansson %s (%s)",
                  hq__env_result_name(p), hq__env_result_name(j), dj);
    if (j == HQ_ENV_OK) {
        check_env(&jans, "jansson");
        check_env(&full, "parse");
        HQ_FUZZ_CHECK(same_env(&full, &jans), "parse and jansson read different values");
    } else {
        HQ_FUZZ_CHECK(jans.code == NULL && jans.customer == NULL && full.code == NULL &&
                          full.customer == NULL,
                      "a failed parse left values behind");
        HQ_FUZZ_CHECK(dj[0] != '\0' && strcmp(dj, df) == 0,
                      "details differ: '%s' vs '%s'", dj, df);
    }

    /* What jansson alone says of the body. */
    root = json_loadb(body, len, 0, &jerr);
    if (root != NULL || json_error_code(&jerr) != json_error_numeric_overflow) {
        HQ_FUZZ_CHECK((root != NULL && json_is_object(root)) ==
                          (j != HQ_ENV_INVALID_JSON),
                      "jansson %s an object, the result is %s",
                      root != NULL && json_is_object(root) ? "reads" : "reads no",
                      hq__env_result_name(j));
        if (root == NULL) {
            char want[HQ_ENV_DETAIL_MAX];

            snprintf(want, sizeof(want), "line %d column %d: %s", jerr.line,
                     jerr.column, jerr.text);
            HQ_FUZZ_CHECK(strcmp(want, dj) == 0, "detail '%s', jansson '%s'",
                          dj, want);
        }
    }
    exact = hq__json_loadb_exact(body, len, 0, NULL);
    if (root != NULL)
        HQ_FUZZ_CHECK(exact != NULL && json_equal(root, exact),
                      "jansson and the exact reading differ");
    HQ_FUZZ_CHECK((exact != NULL && json_is_object(exact)) ==
                      (j != HQ_ENV_INVALID_JSON),
                  "the exact reading %s an object, the result is %s",
                  exact != NULL && json_is_object(exact) ? "is" : "is not",
                  hq__env_result_name(j));
    if (j == HQ_ENV_OK) {
        json_t *code = json_object_get(exact, "code");

        HQ_FUZZ_CHECK(json_is_string(code) && json_string_length(code) == jans.code_len &&
                          memcmp(json_string_value(code), jans.code, jans.code_len) == 0,
                      "the code read is not jansson's \"code\"");
        check_data(body, len, json_object_get(exact, "data"));
    }
    json_decref(exact);
    json_decref(root);

    hq__envelope_release(&fast);
    hq__envelope_release(&jans);
    hq__envelope_release(&full);
    hq__customer_spec_release(&spec);
    return 0;
}
