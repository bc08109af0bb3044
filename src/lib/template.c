/*
 * Fetch templates (see template_int.h for the contract).
 *
 * DESIGN: a template is parsed once into a list of parts, each a literal
 * or a placeholder, so that filling it per job is one pass that never
 * re-parses the line. The route ("GET /posts/{}") is computed at parse time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template_int.h"

enum part_kind { PART_TEXT, PART_CUSTOMER, PART_CODE, PART_DATA };

struct part {
    int kind;      /* enum part_kind */
    char *text;    /* PART_TEXT: the literal; else the field's name */
    char **segs;   /* PART_DATA: the path below data, e.g. {"a", "b"} */
    size_t nsegs;
};

struct hq__template {
    char *method;
    char *route;   /* method " " path with each placeholder as {} */
    struct part *parts;
    size_t nparts;
};

static void
part_release(struct part *p)
{
    free(p->text);
    for (size_t i = 0; i < p->nsegs; i++)
        free(p->segs[i]);
    free(p->segs);
}

void
hq__template_free(struct hq__template *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nparts; i++)
        part_release(&t->parts[i]);
    free(t->parts);
    free(t->method);
    free(t->route);
    free(t);
}

const char *
hq__template_method(const struct hq__template *t)
{
    return t->method;
}

const char *
hq__template_route(const struct hq__template *t)
{
    return t->route;
}

static struct part *
add_part(struct hq__template *t, int kind, const char *text, size_t len)
{
    struct part *np, *p;

    np = realloc(t->parts, (t->nparts + 1) * sizeof(*np));
    if (!np)
        return NULL;
    t->parts = np;
    p = &t->parts[t->nparts];
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    p->text = strndup(text, len);
    if (!p->text)
        return NULL;
    t->nparts++;
    return p;
}

/* Split "data.a.b" below "data" into segments; 0 or -1 on ENOMEM. */
static int
split_data_path(struct part *p, const char *name, size_t len,
                struct hq__err *err, size_t col)
{
    const char *s = name + 5, *end = name + len; /* after "data." */

    while (s <= end) {
        const char *dot = memchr(s, '.', (size_t)(end - s));
        size_t n = dot ? (size_t)(dot - s) : (size_t)(end - s);
        char **ns;

        if (n == 0)
            return hq__err_set(err, HQ_EINVAL,
                               "empty segment in '{%.*s}' at column %zu",
                               (int)len, name, col);
        ns = realloc(p->segs, (p->nsegs + 1) * sizeof(*ns));
        if (!ns)
            return HQ_ENOMEM;
        p->segs = ns;
        p->segs[p->nsegs] = strndup(s, n);
        if (!p->segs[p->nsegs])
            return HQ_ENOMEM;
        p->nsegs++;
        if (!dot)
            break;
        s = dot + 1;
    }
    return HQ_OK;
}

static int
parse_placeholder(struct hq__template *t, const char *name, size_t len,
                  size_t col, struct hq__err *err)
{
    struct part *p;

    if (len == 8 && memcmp(name, "customer", 8) == 0)
        return add_part(t, PART_CUSTOMER, name, len) ? HQ_OK : HQ_ENOMEM;
    if (len == 4 && memcmp(name, "code", 4) == 0)
        return add_part(t, PART_CODE, name, len) ? HQ_OK : HQ_ENOMEM;
    if (len == 4 && memcmp(name, "data", 4) == 0)
        return hq__err_set(err, HQ_EINVAL,
                           "'{data}' is an object, name a field below it "
                           "at column %zu", col);
    if (len > 5 && memcmp(name, "data.", 5) == 0) {
        p = add_part(t, PART_DATA, name, len);
        if (!p)
            return HQ_ENOMEM;
        return split_data_path(p, name, len, err, col);
    }
    return hq__err_set(err, HQ_EINVAL,
                       "unknown placeholder '{%.*s}' at column %zu (use "
                       "{customer}, {code} or {data.FIELD})",
                       (int)len, name, col);
}

static int
parse_path(struct hq__template *t, const char *path, size_t pathcol,
           struct hq__err *err)
{
    const char *s = path, *lit = path;
    size_t routelen = strlen(t->method) + 1;
    char *r;
    int rc;

    /* The route is never longer than the line itself. */
    t->route = malloc(strlen(t->method) + 1 + strlen(path) + 1);
    if (!t->route)
        return HQ_ENOMEM;
    r = t->route;
    memcpy(r, t->method, strlen(t->method));
    r[strlen(t->method)] = ' ';

    for (; *s; s++) {
        const char *close;
        size_t col = pathcol + (size_t)(s - path);

        if (*s == '}')
            return hq__err_set(err, HQ_EINVAL, "unmatched '}' at column %zu",
                               col);
        if (*s != '{') {
            r[routelen++] = *s;
            continue;
        }
        close = strchr(s, '}');
        if (!close)
            return hq__err_set(err, HQ_EINVAL, "unclosed '{' at column %zu",
                               col);
        if (memchr(s + 1, '{', (size_t)(close - s - 1)))
            return hq__err_set(err, HQ_EINVAL, "nested '{' at column %zu",
                               col);
        if (s > lit && !add_part(t, PART_TEXT, lit, (size_t)(s - lit)))
            return HQ_ENOMEM;
        rc = parse_placeholder(t, s + 1, (size_t)(close - s - 1), col, err);
        if (rc != HQ_OK)
            return rc;
        r[routelen++] = '{';
        r[routelen++] = '}';
        s = close;
        lit = close + 1;
    }
    if (s > lit && !add_part(t, PART_TEXT, lit, (size_t)(s - lit)))
        return HQ_ENOMEM;
    r[routelen] = '\0';
    return HQ_OK;
}

int
hq__template_parse(const char *line, struct hq__template **out,
                   struct hq__err *err)
{
    struct hq__template *t;
    const char *s = line, *m;
    size_t mlen;
    int rc;

    *out = NULL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return HQ_ENOMEM;
    while (*s == ' ' || *s == '\t')
        s++;
    m = s;
    while (*s >= 'A' && *s <= 'Z')
        s++;
    mlen = (size_t)(s - m);
    if (mlen == 0 && *s == '/') {
        t->method = strdup("GET");
    } else if (mlen > 0 && (*s == ' ' || *s == '\t')) {
        t->method = strndup(m, mlen);
        while (*s == ' ' || *s == '\t')
            s++;
    } else {
        rc = hq__err_set(err, HQ_EINVAL,
                         "expected 'METHOD /path', e.g. 'GET /posts/{data.id}'");
        goto fail;
    }
    if (!t->method) {
        rc = HQ_ENOMEM;
        goto fail;
    }
    if (*s != '/') {
        rc = hq__err_set(err, HQ_EINVAL,
                         "the path must start with '/' at column %zu",
                         (size_t)(s - line) + 1);
        goto fail;
    }
    for (const char *c = s; *c; c++) {
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            rc = hq__err_set(err, HQ_EINVAL,
                             "space or control character in the path at "
                             "column %zu", (size_t)(c - line) + 1);
            goto fail;
        }
    }
    rc = parse_path(t, s, (size_t)(s - line) + 1, err);
    if (rc != HQ_OK)
        goto fail;
    *out = t;
    return HQ_OK;
fail:
    if (rc == HQ_ENOMEM)
        hq__err_set(err, rc, "out of memory");
    hq__template_free(t);
    return rc;
}

size_t
hq__url_encode(const char *s, size_t len, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                   (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                   c == '_' || c == '~';

        if (n + (keep ? 1 : 3) >= size)
            return (size_t)-1;
        if (keep) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    if (n >= size)
        return (size_t)-1;
    out[n] = '\0';
    return n;
}

/* Is `s` a decimal array index? Stores it in *idx. */
static int
parse_index(const char *s, size_t *idx)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return 0;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end)
        return 0;
    *idx = (size_t)v;
    return 1;
}

/* The field a placeholder names, or NULL. */
static const json_t *
lookup(const struct part *p, const json_t *data)
{
    const json_t *v = data;

    for (size_t i = 0; v && i < p->nsegs; i++) {
        size_t idx;

        if (json_is_object(v))
            v = json_object_get(v, p->segs[i]);
        else if (json_is_array(v) && parse_index(p->segs[i], &idx))
            v = json_array_get(v, idx);
        else
            v = NULL;
    }
    return v;
}

/* Append `len` bytes of `s`, URL-encoded or not, to the growing buffer. */
static int
append(char **buf, size_t *len, size_t *cap, const char *s, size_t n,
       int encode)
{
    size_t need = *len + (encode ? 3 * n : n) + 1;
    size_t w;

    if (need > *cap) {
        size_t ncap = *cap ? *cap : 64;
        char *nb;

        while (ncap < need)
            ncap *= 2;
        nb = realloc(*buf, ncap);
        if (!nb)
            return HQ_ENOMEM;
        *buf = nb;
        *cap = ncap;
    }
    if (encode) {
        w = hq__url_encode(s, n, *buf + *len, *cap - *len);
    } else {
        memcpy(*buf + *len, s, n);
        (*buf)[*len + n] = '\0';
        w = n;
    }
    *len += w;
    return HQ_OK;
}

int
hq__template_fill(const struct hq__template *t, const json_t *data,
                  const char *customer, const char *code, char **path,
                  struct hq__err *err)
{
    char *buf = NULL, num[64];
    size_t len = 0, cap = 0;
    int rc = HQ_OK;

    *path = NULL;
    for (size_t i = 0; i < t->nparts && rc == HQ_OK; i++) {
        const struct part *p = &t->parts[i];
        const json_t *v;

        switch (p->kind) {
        case PART_TEXT:
            rc = append(&buf, &len, &cap, p->text, strlen(p->text), 0);
            break;
        case PART_CUSTOMER:
            rc = append(&buf, &len, &cap, customer, strlen(customer), 1);
            break;
        case PART_CODE:
            rc = append(&buf, &len, &cap, code, strlen(code), 1);
            break;
        case PART_DATA:
            v = lookup(p, data);
            if (!v || json_is_null(v)) {
                rc = hq__err_set(err, HQ_ENOTFOUND, "missing field '%s'",
                                 p->text);
            } else if (json_is_string(v)) {
                rc = append(&buf, &len, &cap, json_string_value(v),
                            json_string_length(v), 1);
            } else if (json_is_integer(v)) {
                snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                         json_integer_value(v));
                rc = append(&buf, &len, &cap, num, strlen(num), 1);
            } else if (json_is_real(v)) {
                snprintf(num, sizeof(num), "%.17g", json_real_value(v));
                rc = append(&buf, &len, &cap, num, strlen(num), 1);
            } else if (json_is_boolean(v)) {
                const char *b = json_is_true(v) ? "true" : "false";
                rc = append(&buf, &len, &cap, b, strlen(b), 1);
            } else {
                rc = hq__err_set(err, HQ_ENOTFOUND,
                                 "field '%s' is an %s, not a value", p->text,
                                 json_is_object(v) ? "object" : "array");
            }
            break;
        }
    }
    if (rc == HQ_OK && !buf)
        rc = append(&buf, &len, &cap, "", 0, 0);
    if (rc != HQ_OK) {
        if (rc == HQ_ENOMEM)
            hq__err_set(err, rc, "out of memory");
        free(buf);
        return rc;
    }
    *path = buf;
    return HQ_OK;
}
