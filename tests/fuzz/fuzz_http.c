/*
 * Fuzz target for the HTTP/1.1 request reader (src/lib/http1.c): the
 * request line and headers, Content-Length and chunked bodies with their
 * trailers, keep-alive and pipelining: everything a client sends before the
 * intake looks at the webhook itself (signature and envelope have their own
 * targets).
 *
 * It drives the reader as the intake does, with no socket: feed what has
 * arrived, route (POST /webhook), start the body, feed again; each request
 * or refusal is written to a log line. A refusal of the reader closes the
 * connection, as do 404/405/501 of a request with a body.
 *
 * Input: one byte, then the bytes of the connection. The first byte, when
 * not 0, is the size of the pieces the bytes arrive in a second time (so a
 * header block or a chunk line can be split anywhere). Limits are small
 * (max_header 1 KiB, max_body 2 KiB) so that inputs reach them; the
 * customer comes from an "x-customer" header.
 *
 * Beyond never crashing or leaking: the reader takes no byte that was not
 * fed, all of them when it asks for more; a body is never over max_body,
 * and a Content-Length body is exactly that long; a refusal is one of
 * 400/413/431/501 with a name and a detail. And the log does not depend on
 * how the bytes were split.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1_int.h"

#include "fuzz.h"

#define LOG_MAX 16384

static const struct hq__http1_config cfg = {1024, 2048, "x-customer"};

struct log {
    char s[LOG_MAX];
    size_t n;
};

static void
say(struct log *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
say(struct log *l, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (l->n >= sizeof(l->s))
        return;
    va_start(ap, fmt);
    n = vsnprintf(l->s + l->n, sizeof(l->s) - l->n, fmt, ap);
    va_end(ap);
    l->n += n > 0 ? (size_t)n : 0;
    if (l->n > sizeof(l->s))
        l->n = sizeof(l->s);
}

static uint32_t
fnv(const char *s, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static void
refused(struct log *l, const struct hq__http1_error *e)
{
    HQ_FUZZ_CHECK(e->failure == HQ_HTTP1_NO_MEMORY || e->status == 400 ||
                      e->status == 413 || e->status == 431 || e->status == 501,
                  "status %d", e->status);
    HQ_FUZZ_CHECK(e->name != NULL && e->detail[0] != '\0', "an empty refusal");
    say(l, "refused %d %s: %s\n", e->status, e->name, e->detail);
}

static void
request(struct log *l, const struct hq__http1 *h)
{
    HQ_FUZZ_CHECK(h->body_len <= cfg.max_body, "body of %zu bytes", h->body_len);
    HQ_FUZZ_CHECK(h->chunked || h->body_len == (size_t)(h->content_length > 0
                                                            ? h->content_length
                                                            : 0),
                  "body of %zu bytes for Content-Length %lld", h->body_len,
                  (long long)h->content_length);
    HQ_FUZZ_CHECK(h->body == NULL || h->body[h->body_len] == '\0',
                  "body not NUL-terminated");
    say(l, "request %zu bytes %08x id=%.*s ts=%.*s sig=%zu customer=%.*s keep=%d\n",
        h->body_len, fnv(h->body ? h->body : "", h->body_len), (int)h->wh_id_len,
        h->wh_id ? h->wh_id : "", (int)h->wh_ts_len, h->wh_ts ? h->wh_ts : "",
        h->wh_sig_len, (int)h->extra_len, h->extra ? h->extra : "", h->keep_alive);
}

/* One connection: `size` bytes arriving `piece` at a time, logged. */
static void
run(const uint8_t *data, size_t size, size_t piece, struct log *l)
{
    const char *in = (const char *)data;
    struct hq__http1 h;
    struct hq__http1_error e;
    size_t taken = 0, arrived = 0;
    int closed = 0;

    hq__http1_init(&h, &cfg);
    l->n = 0;
    while (arrived < size && !closed) {
        arrived += size - arrived < piece ? size - arrived : piece;
        for (;;) {
            size_t avail = arrived - taken, used = 0;
            enum hq__http1_result r;
            int cont;

            if (avail == 0 && h.stage == 0)
                break; /* between requests, or waiting for a header byte */
            memset(&e, 0, sizeof(e));
            r = hq__http1_feed(&h, in + taken, avail, &used, &e);
            HQ_FUZZ_CHECK(used <= avail, "took %zu of %zu bytes", used, avail);
            HQ_FUZZ_CHECK(r != HQ_HTTP1_MORE || used == avail,
                          "asked for more, took %zu of %zu", used, avail);
            taken += used;
            if (r == HQ_HTTP1_MORE)
                break;
            if (r == HQ_HTTP1_ERROR) {
                refused(l, &e);
                closed = 1;
                break;
            }
            if (r == HQ_HTTP1_DONE) {
                request(l, &h);
                closed = !h.keep_alive;
                hq__http1_reset(&h);
                if (closed)
                    break;
                continue;
            }
            /* HEAD: route as the intake does. */
            if (strcmp(h.path, "/webhook") != 0 || h.method != HQ_HTTP1_POST) {
                say(l, "%s %s\n", strcmp(h.path, "/webhook") ? "404" : "405/501",
                    h.path);
                closed = hq__http1_has_body(&h) || !h.keep_alive;
                hq__http1_reset(&h);
                if (closed)
                    break;
                continue;
            }
            if (hq__http1_body_start(&h, &cont, &e) != 0) {
                refused(l, &e);
                closed = 1;
                break;
            }
            HQ_FUZZ_CHECK(!cont || h.expect > 0, "100 Continue unasked");
        }
    }
    hq__http1_release(&h);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct log whole, pieces;
    size_t piece;

    if (size == 0)
        return 0;
    piece = data[0] ? data[0] : size - 1;
    data++;
    size--;
    run(data, size, size ? size : 1, &whole);
    if (piece >= size)
        return 0;
    /* However the bytes are split, the outcome is the same. */
    run(data, size, piece, &pieces);
    HQ_FUZZ_CHECK(whole.n == pieces.n && memcmp(whole.s, pieces.s, whole.n) == 0,
                  "in one piece:\n%.*s\nin pieces of %zu:\n%.*s", (int)whole.n,
                  whole.s, piece, (int)pieces.n, pieces.s);
    if (getenv("HQ_FUZZ_SHOW") != NULL)
        fprintf(stderr, "%.*s", (int)whole.n, whole.s);
    return 0;
}
