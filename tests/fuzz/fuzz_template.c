/*
 * Fuzz target for fetch templates (template.c): parse any line, and fill
 * what parses with any JSON.
 *
 * Input: "LINE\nJSON". LINE is the `fetch` value; JSON (any value, NULs in
 * strings allowed) is the webhook's `data`, absent when it does not parse.
 * The customer is "c/1 ?#" and the code "post-create".
 *
 * Beyond never crashing or leaking: a parsed template has an upper-case
 * method and a route "METHOD /..." with no blank or control character; a
 * filled path starts with '/', has no byte <= ' ' or 0x7f, and its reserved
 * characters (all but A-Z a-z 0-9 - . _ ~ and '%') are exactly the route's
 * literal ones: a filled value never adds a '/', '?', '#' or '&'.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "template_int.h"

static int
unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

/* How many of the reserved byte `c` are in `s`. */
static size_t
count(const char *s, unsigned char c)
{
    size_t n = 0;

    for (; *s; s++)
        n += (unsigned char)*s == c;
    return n;
}

static void
check_filled(const char *route_path, const char *path)
{
    HQ_FUZZ_CHECK(path[0] == '/', "path '%s' does not start with '/'", path);
    for (const char *p = path; *p; p++)
        HQ_FUZZ_CHECK((unsigned char)*p > ' ' && *p != 0x7f,
                      "blank or control byte 0x%02x in '%s'", (unsigned char)*p, path);
    for (unsigned c = 0x21; c < 0x7f; c++) {
        size_t want;

        if (unreserved((unsigned char)c) || c == '%')
            continue;
        want = count(route_path, (unsigned char)c);
        if (c == '{' || c == '}')
            want = 0; /* the route's placeholders */
        HQ_FUZZ_CHECK(count(path, (unsigned char)c) == want,
                      "'%c' %zu times in '%s', %zu in the route '%s'", c,
                      count(path, (unsigned char)c), path, want, route_path);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    size_t linelen = nl ? (size_t)(nl - in) : size;
    struct hq__template *t = NULL;
    struct hq__err err;
    json_t *json = NULL;
    const char *method, *route;
    char *line, *path = NULL;
    int rc;

    if (memchr(in, '\0', linelen) != NULL)
        return 0; /* a config value never holds a NUL */
    line = malloc(linelen + 1);
    if (line == NULL)
        abort();
    memcpy(line, in, linelen);
    line[linelen] = '\0';
    rc = hq__template_parse(line, &t, &err);
    free(line);
    if (rc != HQ_OK) {
        HQ_FUZZ_CHECK(rc == HQ_EINVAL && t == NULL && err.msg[0] != '\0',
                      "parse failed with %d, template %p", rc, (void *)t);
        return 0;
    }

    method = hq__template_method(t);
    route = hq__template_route(t);
    HQ_FUZZ_CHECK(method[0] != '\0', "empty method");
    for (const char *m = method; *m; m++)
        HQ_FUZZ_CHECK(*m >= 'A' && *m <= 'Z', "method '%s'", method);
    HQ_FUZZ_CHECK(strncmp(route, method, strlen(method)) == 0 &&
                      route[strlen(method)] == ' ' && route[strlen(method) + 1] == '/',
                  "route '%s' of method '%s'", route, method);
    for (const char *r = route + strlen(method) + 1; *r; r++)
        HQ_FUZZ_CHECK((unsigned char)*r > ' ' && *r != 0x7f, "blank in route '%s'", route);

    if (nl != NULL)
        json = json_loadb(nl + 1, size - linelen - 1, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                          NULL);
    rc = hq__template_fill(t, json, "c/1 ?#", "post-create", &path, &err);
    if (rc == HQ_OK) {
        HQ_FUZZ_CHECK(path != NULL, "ok without a path");
        check_filled(route + strlen(method) + 1, path);
    } else {
        HQ_FUZZ_CHECK(rc == HQ_ENOTFOUND && path == NULL && err.msg[0] != '\0',
                      "fill failed with %d", rc);
    }
    free(path);
    json_decref(json);
    hq__template_free(t);
    return 0;
}
