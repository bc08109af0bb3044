/*
 * Unit tests for http1.c, the intake's HTTP/1.1 request reader: a table of
 * connection bytes and what the reader makes of them, fed whole and one
 * byte at a time (the outcome must not depend on it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "http1_int.h"

static const struct hq__http1_config cfg = {64, 16, "x-customer"};

static const struct {
    const char *in;
    int status;        /* 0: a request */
    const char *what;  /* the body, or the error's detail */
} rows[] = {
    {"POST /w HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 0, "abc"},
    {"\r\nPOST /w?q=1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0, ""},
    {"POST /w HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
     "3;ext\r\nabc\r\n2\r\nde\r\n0\r\nT: x\r\n\r\n", 0, "abcde"},
    {"POST /w HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc", 400,
     "Content-Length is not a plain decimal number"},
    {"POST /w HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400,
     "two Content-Length headers differ"},
    {"POST /w HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
     "only Transfer-Encoding: chunked is supported"},
    {"POST /w HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400, "obsolete header line folding"},
    {"POST /w HTTP/1.1\nA: b\r\n\r\n", 400,
     "malformed header block (NUL, or a bare CR or LF)"},
    {"POST /w HTTP/2\r\n\r\n", 400, "unsupported HTTP version"},
    {"POST /w HTTP/1.1\r\nA: 0123456789012345678901234567890123456789012345\r\n\r\n", 431,
     "the header block is over the limit"},
    {"POST /w HTTP/1.1\r\nContent-Length: 17\r\n\r\n", 413,
     "Content-Length 17 is over the limit of 16 bytes"},
    {"POST /w HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n", 413,
     "the chunked body is over the limit of 16 bytes"},
    {"POST /w HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY", 400,
     "malformed chunked body"},
    {"POST /w HTTP/1.1\r\nExpect: nothing\r\n\r\n", 400, "unsupported Expect header"},
};

/* Feed `in` `piece` bytes at a time; the outcome into status/what. */
static void
read_one(const char *in, size_t piece, int *status, char *what, size_t size)
{
    struct hq__http1 h;
    struct hq__http1_error e;
    size_t len = strlen(in), taken = 0, arrived = 0;
    int cont;

    hq__http1_init(&h, &cfg);
    *status = -1;
    snprintf(what, size, "(incomplete)");
    while (arrived < len) {
        arrived += len - arrived < piece ? len - arrived : piece;
        for (;;) {
            size_t used;
            enum hq__http1_result r =
                hq__http1_feed(&h, in + taken, arrived - taken, &used, &e);

            taken += used;
            if (r == HQ_HTTP1_MORE)
                break;
            if (r == HQ_HTTP1_ERROR) {
                *status = e.status;
                snprintf(what, size, "%s", e.detail);
                goto out;
            }
            if (r == HQ_HTTP1_DONE) {
                assert_string_equal(h.path, "/w");
                *status = 0;
                snprintf(what, size, "%.*s", (int)h.body_len, h.body ? h.body : "");
                goto out;
            }
            if (hq__http1_body_start(&h, &cont, &e) != 0) {
                *status = e.status;
                snprintf(what, size, "%s", e.detail);
                goto out;
            }
        }
    }
out:
    hq__http1_release(&h);
}

static void
test_http1_reads_requests_and_names_what_is_wrong(void **state)
{
    (void)state;
    for (size_t i = 0; i < HQ_ARRAY_SIZE(rows); i++) {
        for (size_t piece = 1; piece <= 1000; piece += 999) {
            char what[200];
            int status;

            read_one(rows[i].in, piece, &status, what, sizeof(what));
            if (status != rows[i].status || strcmp(what, rows[i].what) != 0)
                fail_msg("row %zu in pieces of %zu: %d '%s', want %d '%s'", i,
                         piece, status, what, rows[i].status, rows[i].what);
        }
    }
}

static void
test_http1_leaves_the_next_request_and_keeps_headers(void **state)
{
    static const char two[] = "POST /w HTTP/1.0\r\nConnection: keep-alive\r\n"
                              "webhook-id: m1\r\nX-Customer:  acme \r\n"
                              "Content-Length: 2\r\n\r\nhiPOST /w HTTP/1.1\r\n";
    static const struct hq__http1_config big = {1024, 16, "x-customer"};
    struct hq__http1 h;
    struct hq__http1_error e;
    size_t used, off = 0;
    int cont;

    (void)state;
    hq__http1_init(&h, &big);
    assert_int_equal(hq__http1_feed(&h, two, sizeof(two) - 1, &used, &e), HQ_HTTP1_HEAD);
    off += used;
    assert_int_equal(h.http10, 1);
    assert_int_equal(h.keep_alive, 1);
    assert_string_equal(h.wh_id, "m1");
    assert_string_equal(h.extra, "acme");
    assert_int_equal(hq__http1_body_start(&h, &cont, &e), 0);
    assert_int_equal(hq__http1_feed(&h, two + off, sizeof(two) - 1 - off, &used, &e),
                     HQ_HTTP1_DONE);
    off += used;
    assert_string_equal(h.body, "hi");
    assert_string_equal(two + off, "POST /w HTTP/1.1\r\n");
    hq__http1_reset(&h);
    assert_int_equal(hq__http1_feed(&h, two + off, sizeof(two) - 1 - off, &used, &e),
                     HQ_HTTP1_MORE);
    assert_int_equal(used, sizeof(two) - 1 - off);
    hq__http1_release(&h);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http1_reads_requests_and_names_what_is_wrong),
        cmocka_unit_test(test_http1_leaves_the_next_request_and_keeps_headers),
    };
    return cmocka_run_group_tests_name("http1", tests, NULL, NULL);
}
