/*
 * JSON whose numbers keep their exact text (see json_exact_int.h).
 *
 * DESIGN: jansson stays the one JSON parser; we only step around its
 * number limits. A body is first given to jansson as it is: nearly every
 * webhook passes, at no extra cost. Only when jansson answers
 * json_error_numeric_overflow is a copy made in which each number jansson
 * refuses is rewritten (an integer beyond 64 bits as a string of its
 * digits, a real beyond a double as 0.0 padded to the same length), and
 * jansson reads that copy. Any other error in the copy is reported at the
 * line and column of the original. The numbers' text itself is never taken
 * from the tree: hq__json_member_raw() copies it from the original bytes.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common_int.h"
#include "json_exact_int.h"

struct quoted {
    size_t open, end; /* in the copy: the opening quote, just past the closing one */
    int line;
};

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/*
 * The extent of the number starting at buf[i] ('-' or a digit), read as
 * jansson's lexer reads it; *is_int when it has neither fraction nor
 * exponent. Returns the index just past it.
 */
static size_t
number_end(const char *buf, size_t len, size_t i, int *is_int)
{
    *is_int = 1;
    if (i < len && buf[i] == '-')
        i++;
    if (i < len && buf[i] == '0') {
        i++;
    } else {
        while (i < len && is_digit(buf[i]))
            i++;
    }
    if (i + 1 < len && buf[i] == '.' && is_digit(buf[i + 1])) {
        *is_int = 0;
        i++;
        while (i < len && is_digit(buf[i]))
            i++;
    }
    if (i < len && (buf[i] == 'e' || buf[i] == 'E')) {
        size_t j = i + 1;

        if (j < len && (buf[j] == '+' || buf[j] == '-'))
            j++;
        if (j < len && is_digit(buf[j])) {
            *is_int = 0;
            while (j < len && is_digit(buf[j]))
                j++;
            i = j;
        }
    }
    return i;
}

/* 1 when jansson refuses the number buf[0..n) as too large (its tests). */
static int
overflows(const char *buf, size_t n, int is_int)
{
    char tmp[64], *text = tmp, *end;
    int over;

    if (n == 0 || (n == 1 && buf[0] == '-'))
        return 0;
    if (n >= sizeof(tmp)) {
        text = malloc(n + 1);
        if (text == NULL)
            return 0;
    }
    memcpy(text, buf, n);
    text[n] = '\0';
    errno = 0;
    if (is_int) {
        (void)strtoll(text, &end, 10);
        over = errno == ERANGE;
    } else {
        double v = strtod(text, &end);

        over = errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL);
    }
    if (text != tmp)
        free(text);
    return over;
}

/* Put the error of the copy back at the original's line and column. */
static void
map_error(json_error_t *err, const struct quoted *q, size_t nq)
{
    size_t pos = (size_t)err->position;
    int shift_col = 0;
    size_t shift_pos = 0;

    for (size_t i = 0; i < nq; i++) {
        size_t d;

        if (q[i].open >= pos)
            break;
        d = q[i].end <= pos ? 2 : 1;
        shift_pos += d;
        if (q[i].line == err->line)
            shift_col += (int)d;
    }
    err->position -= (int)shift_pos;
    if (err->column > shift_col)
        err->column -= shift_col;
}

json_t *
hq__json_loadb_exact(const char *buf, size_t len, size_t flags,
                     json_error_t *err)
{
    json_error_t local;
    struct quoted *q = NULL;
    size_t nq = 0, cap = 0, o = 0;
    char *copy;
    json_t *root;
    int line = 1, in_str = 0;

    if (err == NULL)
        err = &local;
    root = json_loadb(buf, len, flags, err);
    if (root != NULL || json_error_code(err) != json_error_numeric_overflow)
        return root;

    /* Each rewrite adds at most 2 bytes to a number of at least 19. */
    copy = malloc(len + len / 8 + 3);
    if (copy == NULL)
        return NULL;
    for (size_t i = 0; i < len;) {
        char c = buf[i];
        size_t e;
        int is_int;

        if (in_str) {
            copy[o++] = c;
            i++;
            if (c == '\\' && i < len) {
                copy[o++] = buf[i++];
            } else if (c == '"') {
                in_str = 0;
            } else if (c == '\n') {
                line++;
            }
            continue;
        }
        if (c == '"' || (c != '-' && !is_digit(c))) {
            in_str = c == '"';
            line += c == '\n';
            copy[o++] = c;
            i++;
            continue;
        }
        e = number_end(buf, len, i, &is_int);
        if (e == i)
            e = i + 1; /* a lone '-': jansson says what is wrong */
        if (!overflows(buf + i, e - i, is_int)) {
            memcpy(copy + o, buf + i, e - i);
            o += e - i;
        } else if (is_int) {
            if (nq == cap) {
                struct quoted *nqv;

                cap = cap ? cap * 2 : 8;
                nqv = realloc(q, cap * sizeof(*q));
                if (nqv == NULL) {
                    free(q);
                    free(copy);
                    return NULL;
                }
                q = nqv;
            }
            q[nq].open = o;
            q[nq].line = line;
            copy[o++] = '"';
            memcpy(copy + o, buf + i, e - i);
            o += e - i;
            copy[o++] = '"';
            q[nq++].end = o;
        } else {
            /* At least 5 bytes ("1e309"): room for 0.0. */
            memcpy(copy + o, "0.0", 3);
            memset(copy + o + 3, ' ', e - i - 3);
            o += e - i;
        }
        i = e;
    }
    root = json_loadb(copy, o, flags, err);
    if (root == NULL)
        map_error(err, q, nq);
    free(q);
    free(copy);
    return root;
}

/* ------------------------------------------------------------------------ */

static size_t
skip_ws(const char *buf, size_t len, size_t i)
{
    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' ||
                       buf[i] == '\r'))
        i++;
    return i;
}

/* Past the string starting at buf[i] ('"'); len when it does not end. */
static size_t
skip_string(const char *buf, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (buf[i] == '\\')
            i++;
        else if (buf[i] == '"')
            return i + 1;
    }
    return len;
}

/* Past the value starting at buf[i]; len when it does not end. */
static size_t
skip_value(const char *buf, size_t len, size_t i)
{
    size_t depth = 0;

    if (i >= len)
        return len;
    if (buf[i] == '"')
        return skip_string(buf, len, i);
    if (buf[i] != '{' && buf[i] != '[') {
        while (i < len && strchr(",]} \t\r\n", buf[i]) == NULL)
            i++;
        return i;
    }
    while (i < len) {
        char c = buf[i];

        if (c == '"') {
            i = skip_string(buf, len, i);
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && --depth == 0)
            return i + 1;
        i++;
    }
    return len;
}

/*
 * 1 when the key string buf[i..e) (quotes included) reads as `key`, an
 * ASCII string. An escape of a character beyond ASCII never matches.
 */
static int
key_is(const char *buf, size_t i, size_t e, const char *key)
{
    size_t k = 0, klen = strlen(key);

    for (i++, e--; i < e; i++) {
        char c = buf[i];

        if (c == '\\' && i + 1 < e) {
            c = buf[++i];
            if (c == 'u') {
                int v = 0;

                if (i + 4 >= e)
                    return 0;
                for (int j = 1; j <= 4; j++) {
                    int h = hq__hexval((unsigned char)buf[i + (size_t)j]);

                    if (h < 0)
                        return 0;
                    v = v * 16 + h;
                }
                if (v == 0 || v >= 0x80)
                    return 0;
                c = (char)v;
                i += 4;
            } else {
                const char *from = "bfnrt", *to = "\b\f\n\r\t";
                const char *f = strchr(from, c);

                if (f != NULL && c != '\0')
                    c = to[f - from];
            }
        }
        if (k >= klen || key[k++] != c)
            return 0;
    }
    return k == klen;
}

size_t
hq__json_compact(const char *buf, size_t len, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < len;) {
        if (buf[i] == '"') {
            size_t e = skip_string(buf, len, i);

            memcpy(out + o, buf + i, e - i);
            o += e - i;
            i = e;
        } else {
            if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' &&
                buf[i] != '\r')
                out[o++] = buf[i];
            i++;
        }
    }
    return o;
}

int
hq__json_member_raw(const char *buf, size_t len, const char *key, char **out,
                    size_t *outlen)
{
    size_t i = skip_ws(buf, len, 0), vs = 0, ve = 0;
    int found = 0;

    *out = NULL;
    *outlen = 0;
    if (i >= len || buf[i] != '{')
        return -1;
    i = skip_ws(buf, len, i + 1);
    if (i < len && buf[i] == '}')
        return 0;
    for (;;) {
        size_t ks = i, ke, s, e;

        if (i >= len || buf[i] != '"')
            return -1;
        ke = skip_string(buf, len, ks);
        i = skip_ws(buf, len, ke);
        if (i >= len || buf[i] != ':')
            return -1;
        s = skip_ws(buf, len, i + 1);
        e = skip_value(buf, len, s);
        if (e == s)
            return -1;
        if (key_is(buf, ks, ke, key)) {
            found = 1; /* the last one counts, as in jansson */
            vs = s;
            ve = e;
        }
        i = skip_ws(buf, len, e);
        if (i >= len)
            return -1;
        if (buf[i] == '}')
            break;
        if (buf[i] != ',')
            return -1;
        i = skip_ws(buf, len, i + 1);
    }
    if (!found)
        return 0;
    *out = malloc(ve - vs + 1);
    if (*out == NULL)
        return -1;
    *outlen = hq__json_compact(buf + vs, ve - vs, *out);
    (*out)[*outlen] = '\0';
    return 0;
}
