/*
 * The HTTP/1.1 request reader (see http1_int.h): no sockets, no events, so
 * it is fuzzed alone (tests/fuzz/fuzz_http1.c) and the intake only moves
 * bytes to it.
 *
 * The header block is copied into `hdr` as it comes, at most max_header + 4
 * bytes, and searched for its blank line from where the last search
 * stopped; the bytes after the blank line are not taken. A header block
 * can therefore be refused (431) only once max_header + 4 bytes hold no
 * blank line, or the blank line ends past it: what the limit means does
 * not depend on how the bytes arrive. Parsing then writes NULs into `hdr`
 * to end the fields it keeps. A chunked body is read by a small state
 * machine that keeps the chunk-size line (at most
 * HQ_HTTP1_CHUNK_LINE_MAX bytes) and counts the trailer fields' bytes
 * without keeping them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http1_int.h"

enum { STAGE_HEAD, STAGE_BODY, STAGE_DONE };
enum { CK_SIZE, CK_DATA, CK_DATA_END, CK_TRAILER };

#define BIG_BODY (64 * 1024) /* a body buffer this large is not kept */

void
hq__http1_init(struct hq__http1 *h, const struct hq__http1_config *cfg)
{
    memset(h, 0, sizeof(*h));
    h->cfg = cfg;
    hq__http1_reset(h);
}

void
hq__http1_release(struct hq__http1 *h)
{
    free(h->hdr);
    free(h->body);
    h->hdr = h->body = NULL;
    h->hdr_cap = h->body_cap = 0;
}

void
hq__http1_reset(struct hq__http1 *h)
{
    h->method = HQ_HTTP1_UNKNOWN;
    h->path = NULL;
    h->http10 = 0;
    h->keep_alive = 0;
    h->content_length = -1;
    h->chunked = 0;
    h->expect = 0;
    h->wh_id = h->wh_ts = h->wh_sig = h->extra = NULL;
    h->wh_id_len = h->wh_ts_len = h->wh_sig_len = h->extra_len = 0;
    h->body_len = 0;
    if (h->body_cap > BIG_BODY) {
        free(h->body);
        h->body = NULL;
        h->body_cap = 0;
    }
    h->stage = STAGE_HEAD;
    h->hdr_len = 0;
    h->ck = CK_SIZE;
    h->ck_left = 0;
    h->line_len = 0;
    h->trailer_bytes = 0;
    h->trailer_line = 0;
}

static int
fail(struct hq__http1_error *err, int status, enum hq__http1_failure f,
     const char *name, const char *detail)
{
    err->status = status;
    err->failure = f;
    err->name = name;
    snprintf(err->detail, sizeof(err->detail), "%s", detail);
    return -1;
}

static int
bad(struct hq__http1_error *err, const char *detail)
{
    return fail(err, 400, HQ_HTTP1_BAD_REQUEST, "bad_request", detail);
}

static int
no_memory(struct hq__http1_error *err)
{
    return fail(err, 0, HQ_HTTP1_NO_MEMORY, "out_of_memory", "out of memory");
}

static int
ieq(const char *a, size_t alen, const char *b)
{
    return alen == strlen(b) && strncasecmp(a, b, alen) == 0;
}

static enum hq__http1_method
parse_method(const char *m, size_t len)
{
    static const char *const known[] = {
        "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
    };

    if (len == 4 && memcmp(m, "POST", 4) == 0)
        return HQ_HTTP1_POST;
    if (len == 4 && memcmp(m, "HEAD", 4) == 0)
        return HQ_HTTP1_HEAD_METHOD;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(known); i++)
        if (len == strlen(known[i]) && memcmp(m, known[i], len) == 0)
            return HQ_HTTP1_OTHER_KNOWN;
    return HQ_HTTP1_UNKNOWN;
}

static int
is_tchar(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", ch);
}

/* Keep the first value of a header we use. */
static void
keep(const char **field, size_t *flen, const char *val, const char *vend)
{
    if (*field == NULL) {
        *field = val;
        *flen = (size_t)(vend - val);
    }
}

/* Parse the header block in h->hdr (ending with its blank line). */
static int
parse_head(struct hq__http1 *h, struct hq__http1_error *err)
{
    size_t len = h->hdr_len;
    char *p = h->hdr, *end = h->hdr + len, *eol, *sp1, *sp2, *path_end;
    int conn_close = 0, conn_keep = 0, te_seen = 0;

    /* No NUL, and CR and LF only as CRLF: then strstr() below always finds
     * the end of a line before the end of the block. */
    for (size_t i = 0; i < len; i++) {
        if (h->hdr[i] == '\0' || (h->hdr[i] == '\r' && h->hdr[i + 1] != '\n') ||
            (h->hdr[i] == '\n' && (i == 0 || h->hdr[i - 1] != '\r')))
            return bad(err, "malformed header block (NUL, or a bare CR or LF)");
    }
    while (p + 1 < end && p[0] == '\r' && p[1] == '\n')
        p += 2; /* RFC 9112 §2.2: ignore empty lines before a request */
    eol = strstr(p, "\r\n");
    if (eol == NULL || eol == p)
        return bad(err, "no request line");
    sp1 = memchr(p, ' ', (size_t)(eol - p));
    sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (sp1 == NULL || sp2 == NULL || sp1 == p || sp2 == sp1 + 1)
        return bad(err, "malformed request line");
    if (ieq(sp2 + 1, (size_t)(eol - sp2 - 1), "HTTP/1.1"))
        h->http10 = 0;
    else if (ieq(sp2 + 1, (size_t)(eol - sp2 - 1), "HTTP/1.0"))
        h->http10 = 1;
    else
        return bad(err, "unsupported HTTP version");
    h->method = parse_method(p, (size_t)(sp1 - p));
    path_end = memchr(sp1 + 1, '?', (size_t)(sp2 - sp1 - 1));
    if (path_end == NULL)
        path_end = sp2;

    for (p = eol + 2; p < end; p = eol + 2) {
        char *colon, *name, *val, *vend;
        size_t nlen;

        eol = strstr(p, "\r\n");
        if (eol == p)
            break; /* the blank line */
        if (*p == ' ' || *p == '\t')
            return bad(err, "obsolete header line folding");
        colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL || colon == p)
            return bad(err, "malformed header line");
        name = p;
        nlen = (size_t)(colon - p);
        for (size_t i = 0; i < nlen; i++)
            if (!is_tchar((unsigned char)name[i]))
                return bad(err, "malformed header name");
        val = colon + 1;
        vend = eol;
        while (val < vend && (*val == ' ' || *val == '\t'))
            val++;
        while (vend > val && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        *vend = '\0';

        if (ieq(name, nlen, "content-length")) {
            int64_t n;

            /* Digits only, no sign or blanks (RFC 9112 §6.3). */
            if (hq__parse_decimal(val, (size_t)(vend - val), &n) != 0)
                return bad(err, "Content-Length is not a plain decimal number");
            if (h->content_length >= 0 && h->content_length != n)
                return bad(err, "two Content-Length headers differ");
            h->content_length = n;
        } else if (ieq(name, nlen, "transfer-encoding")) {
            if (te_seen || !ieq(val, (size_t)(vend - val), "chunked"))
                return fail(err, 501, HQ_HTTP1_BAD_REQUEST, "not_implemented",
                            "only Transfer-Encoding: chunked is supported");
            te_seen = 1;
        } else if (ieq(name, nlen, "connection")) {
            for (char *t = val; t < vend;) {
                size_t tl = strcspn(t, ",");

                while (tl > 0 && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
                    tl--;
                if (ieq(t, tl, "close"))
                    conn_close = 1;
                else if (ieq(t, tl, "keep-alive"))
                    conn_keep = 1;
                t += strcspn(t, ",");
                while (t < vend && (*t == ',' || *t == ' ' || *t == '\t'))
                    t++;
            }
        } else if (ieq(name, nlen, "expect")) {
            h->expect = ieq(val, (size_t)(vend - val), "100-continue") ? 1 : -1;
        } else if (ieq(name, nlen, "webhook-id")) {
            keep(&h->wh_id, &h->wh_id_len, val, vend);
        } else if (ieq(name, nlen, "webhook-timestamp")) {
            keep(&h->wh_ts, &h->wh_ts_len, val, vend);
        } else if (ieq(name, nlen, "webhook-signature")) {
            keep(&h->wh_sig, &h->wh_sig_len, val, vend);
        }
        if (h->cfg->extra_header && ieq(name, nlen, h->cfg->extra_header))
            keep(&h->extra, &h->extra_len, val, vend);
    }

    h->keep_alive = h->http10 ? (conn_keep && !conn_close) : !conn_close;
    h->chunked = te_seen;
    if (te_seen && (h->content_length >= 0 || h->http10)) {
        h->keep_alive = 0;
        return bad(err, h->http10 ? "chunked bodies need HTTP/1.1"
                                  : "both Content-Length and Transfer-Encoding");
    }
    *path_end = '\0';
    h->path = sp1 + 1;
    return 0;
}

/* Take header bytes up to the blank line: 1 when the block is complete,
 * 0 when more is needed, -1 on error. */
static int
feed_head(struct hq__http1 *h, const char *buf, size_t len, size_t *used,
          struct hq__http1_error *err)
{
    size_t max = h->cfg->max_header, room = max + 4 - h->hdr_len;
    size_t take = len < room ? len : room;
    size_t from = h->hdr_len > 3 ? h->hdr_len - 3 : 0;
    char *at;

    if (hq__buf_reserve(&h->hdr, &h->hdr_cap, h->hdr_len + take + 1) != 0)
        return no_memory(err);
    memcpy(h->hdr + h->hdr_len, buf, take);
    h->hdr_len += take;
    at = memmem(h->hdr + from, h->hdr_len - from, "\r\n\r\n", 4);
    if (at == NULL) {
        *used = take;
        /* The limit counts the block without its blank line, up to 3
         * bytes of which may be here already. */
        if (h->hdr_len > max + 3)
            return fail(err, 431, HQ_HTTP1_HEADER_TOO_LARGE, "header_too_large",
                        "the header block is over the limit");
        return 0;
    }
    /* Give back what follows the blank line. */
    *used = take - (h->hdr_len - (size_t)(at + 4 - h->hdr));
    h->hdr_len = (size_t)(at + 4 - h->hdr);
    h->hdr[h->hdr_len] = '\0';
    return 1;
}

/* Room for `need` more body bytes and a NUL. */
static int
body_reserve(struct hq__http1 *h, size_t need, struct hq__http1_error *err)
{
    if (hq__buf_reserve(&h->body, &h->body_cap, h->body_len + need + 1) != 0)
        return no_memory(err);
    return 0;
}

/* The chunk-size line in h->line[0..n): start the chunk, or the trailer. */
static int
chunk_size(struct hq__http1 *h, size_t n, struct hq__http1_error *err)
{
    uint64_t size = 0;
    size_t i = 0;
    char d[120];

    if (n > HQ_HTTP1_CHUNK_LINE_MAX)
        return bad(err, "malformed chunked body");
    h->line[n] = '\0';
    for (; i < n && i < 16; i++) {
        int v = -1;
        char ch = h->line[i];

        if (ch >= '0' && ch <= '9')
            v = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            v = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            v = ch - 'A' + 10;
        if (v < 0)
            break;
        size = size * 16 + (uint64_t)v;
    }
    if (i == 0 || i >= 16 ||
        (h->line[i] != '\0' && h->line[i] != ';' && h->line[i] != ' ' &&
         h->line[i] != '\t'))
        return bad(err, "malformed chunked body");
    if (size == 0) {
        h->ck = CK_TRAILER;
        return 0;
    }
    if (size > h->cfg->max_body || h->body_len + size > h->cfg->max_body) {
        snprintf(d, sizeof(d), "the chunked body is over the limit of %zu bytes",
                 h->cfg->max_body);
        return fail(err, 413, HQ_HTTP1_BODY_TOO_LARGE, "body_too_large", d);
    }
    if (body_reserve(h, (size_t)size, err) != 0)
        return bad(err, "malformed chunked body"); /* as before: refused */
    h->ck_left = size;
    h->ck = CK_DATA;
    return 0;
}

static int
trailer_too_large(struct hq__http1_error *err)
{
    return fail(err, 431, HQ_HTTP1_HEADER_TOO_LARGE, "header_too_large",
                "trailer fields over the header limit");
}

/* Read a chunked body: 1 complete, 0 more needed, -1 error. */
static int
feed_chunked(struct hq__http1 *h, const char *buf, size_t len, size_t *used,
             struct hq__http1_error *err)
{
    size_t i = 0, max_header = h->cfg->max_header;

    while (i < len) {
        size_t n;

        switch (h->ck) {
        case CK_SIZE:
            h->line[h->line_len++] = buf[i++];
            if (h->line_len >= 2 && h->line[h->line_len - 2] == '\r' &&
                h->line[h->line_len - 1] == '\n') {
                n = h->line_len - 2;
                h->line_len = 0;
                if (chunk_size(h, n, err) != 0) {
                    *used = i;
                    return -1;
                }
            } else if (h->line_len >= HQ_HTTP1_CHUNK_LINE_MAX + 2) {
                /* A line of CHUNK_LINE_MAX bytes passes with its '\r' in. */
                *used = i;
                return bad(err, "malformed chunked body");
            }
            break;
        case CK_DATA:
            n = len - i;
            if (n > h->ck_left)
                n = (size_t)h->ck_left;
            memcpy(h->body + h->body_len, buf + i, n);
            h->body_len += n;
            h->ck_left -= n;
            i += n;
            if (h->ck_left == 0)
                h->ck = CK_DATA_END;
            break;
        case CK_DATA_END:
            h->line[h->line_len++] = buf[i++];
            if (h->line_len == 2) {
                h->line_len = 0;
                if (h->line[0] != '\r' || h->line[1] != '\n') {
                    *used = i;
                    return bad(err, "malformed chunked body");
                }
                h->ck = CK_SIZE;
            }
            break;
        case CK_TRAILER: {
            char prev = h->trailer_line ? h->line[0] : 0;
            char ch = buf[i++];

            h->trailer_line++;
            h->line[0] = ch;
            if (prev != '\r' || ch != '\n')
                break;
            if (h->trailer_line == 2) {
                *used = i;
                return 1; /* the blank line: the end */
            }
            h->trailer_bytes += h->trailer_line;
            h->trailer_line = 0;
            if (h->trailer_bytes > max_header) {
                *used = i;
                return trailer_too_large(err);
            }
            break;
        }
        }
    }
    *used = len;
    /* Out of bytes in the middle of a trailer line. */
    if (h->ck == CK_TRAILER && h->trailer_bytes + h->trailer_line > max_header)
        return trailer_too_large(err);
    return 0;
}

enum hq__http1_result
hq__http1_feed(struct hq__http1 *h, const char *buf, size_t len, size_t *used,
               struct hq__http1_error *err)
{
    int rc;

    *used = 0;
    switch (h->stage) {
    case STAGE_HEAD:
        if (len == 0)
            return HQ_HTTP1_MORE;
        rc = feed_head(h, buf, len, used, err);
        if (rc < 0)
            return HQ_HTTP1_ERROR;
        if (rc == 0)
            return HQ_HTTP1_MORE;
        if (parse_head(h, err) != 0) {
            h->keep_alive = 0;
            return HQ_HTTP1_ERROR;
        }
        h->stage = STAGE_BODY;
        return HQ_HTTP1_HEAD;
    case STAGE_BODY:
        if (h->chunked) {
            rc = feed_chunked(h, buf, len, used, err);
            if (rc < 0) {
                h->keep_alive = 0;
                return HQ_HTTP1_ERROR;
            }
            if (rc == 0)
                return HQ_HTTP1_MORE;
        } else if (h->content_length > 0) {
            size_t want = (size_t)h->content_length - h->body_len;

            if (h->body_len == 0 &&
                body_reserve(h, (size_t)h->content_length, err) != 0) {
                h->keep_alive = 0;
                return HQ_HTTP1_ERROR;
            }
            *used = len < want ? len : want;
            memcpy(h->body + h->body_len, buf, *used);
            h->body_len += *used;
            if (h->body_len < (size_t)h->content_length)
                return HQ_HTTP1_MORE;
        }
        if (h->body)
            h->body[h->body_len] = '\0';
        h->stage = STAGE_DONE;
        return HQ_HTTP1_DONE;
    }
    return HQ_HTTP1_DONE;
}

int
hq__http1_has_body(const struct hq__http1 *h)
{
    return h->chunked || h->content_length > 0;
}

int
hq__http1_body_start(struct hq__http1 *h, int *send_continue,
                     struct hq__http1_error *err)
{
    char d[120];

    *send_continue = 0;
    if (h->expect < 0) {
        h->keep_alive = 0;
        return bad(err, "unsupported Expect header");
    }
    if (h->content_length > (int64_t)h->cfg->max_body) {
        h->keep_alive = 0;
        snprintf(d, sizeof(d), "Content-Length %lld is over the limit of %zu bytes",
                 (long long)h->content_length, h->cfg->max_body);
        return fail(err, 413, HQ_HTTP1_BODY_TOO_LARGE, "body_too_large", d);
    }
    *send_continue = h->expect > 0 && !h->http10 && hq__http1_has_body(h);
    h->body_len = 0;
    return 0;
}
