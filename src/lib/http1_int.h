/*
 * An HTTP/1.1 request reader with no I/O: bytes in, a request or an error
 * answer out. The intake feeds it what its connections receive.
 *
 * DESIGN: one reader per connection, one request at a time. The caller
 * feeds bytes as they come, in pieces of any size, and the reader takes
 * only the bytes of the current request (pipelined bytes after it stay
 * with the caller until it feeds them again for the next request). How
 * the bytes are split never changes the outcome. Two stops on the way:
 *   - HQ_HTTP1_HEAD: the header block is read and well-formed; the
 *     request line and the headers we use are set. The caller routes
 *     (path, method), then calls hq__http1_body_start(), which applies
 *     Expect and the body limit, and says whether to send "100 Continue";
 *   - HQ_HTTP1_DONE: the body is read (Content-Length or chunked, trailer
 *     fields skipped), NUL-terminated.
 * Any failure is HQ_HTTP1_ERROR with the answer to give in the error
 * struct (status, error name, detail, whether the connection can go on).
 * Limits are those of DESIGN §3.3: the header block (request line and
 * headers, without the blank line) at most max_header bytes, as are the
 * trailer fields; the body at most max_body bytes; a chunk-size line at
 * most HQ_HTTP1_CHUNK_LINE_MAX bytes. Content-Length is plain digits; one
 * Transfer-Encoding, chunked, not with Content-Length or HTTP/1.0; no
 * obsolete line folding, NUL or bare CR or LF in the header block.
 */
#ifndef HQ_HTTP1_INT_H
#define HQ_HTTP1_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common_int.h"

#define HQ_HTTP1_CHUNK_LINE_MAX 1024
#define HQ_HTTP1_DETAIL_MAX 160

enum hq__http1_result {
    HQ_HTTP1_MORE,  /* every byte fed was taken; feed more */
    HQ_HTTP1_HEAD,  /* the header block is read: route, then body_start */
    HQ_HTTP1_DONE,  /* the request is complete */
    HQ_HTTP1_ERROR, /* answer with `err`; the request is over */
};

enum hq__http1_method { HQ_HTTP1_POST, HQ_HTTP1_HEAD_METHOD, HQ_HTTP1_OTHER_KNOWN,
                        HQ_HTTP1_UNKNOWN };

/* What failed, for the caller's counters. */
enum hq__http1_failure {
    HQ_HTTP1_BAD_REQUEST,     /* 400, or 501 for a Transfer-Encoding */
    HQ_HTTP1_HEADER_TOO_LARGE, /* 431 */
    HQ_HTTP1_BODY_TOO_LARGE,  /* 413 */
    HQ_HTTP1_NO_MEMORY,       /* no answer possible: close */
};

/* The answer to an unreadable request. */
struct hq__http1_error {
    int status;                       /* 400, 413, 431, 501; 0 for NO_MEMORY */
    enum hq__http1_failure failure;
    const char *name;                 /* "bad_request", "body_too_large", ... */
    char detail[HQ_HTTP1_DETAIL_MAX];
};

/* What the reader needs to know; borrowed, outlives the reader. */
struct hq__http1_config {
    size_t max_header;
    size_t max_body;
    const char *extra_header; /* a header to keep (the customer's), or NULL */
};

/* The reader and the request it is reading. Fields marked "request" are
 * set from HQ_HTTP1_HEAD on and valid until the next hq__http1_reset();
 * strings point into the reader's buffers, NUL-terminated. */
struct hq__http1 {
    const struct hq__http1_config *cfg;
    /* request */
    enum hq__http1_method method;
    const char *path;          /* without the query */
    int http10;
    int keep_alive;            /* the client allows another request */
    int64_t content_length;    /* -1: none */
    int chunked;
    int expect;                /* Expect: 0 none, 1 100-continue, -1 other */
    const char *wh_id, *wh_ts, *wh_sig, *extra;
    size_t wh_id_len, wh_ts_len, wh_sig_len, extra_len;
    char *body;                /* NUL-terminated at DONE; NULL: no body */
    size_t body_len;
    /* reader */
    int stage;                 /* 0 header block, 1 body, 2 done */
    char *hdr;                 /* the header block */
    size_t hdr_len, hdr_cap;
    size_t body_cap;
    int ck;                    /* chunked: what comes next */
    uint64_t ck_left;          /* bytes left in the chunk */
    char line[HQ_HTTP1_CHUNK_LINE_MAX + 2];
    size_t line_len;           /* chunk-size line or CRLF read so far */
    size_t trailer_bytes;      /* trailer fields so far */
    size_t trailer_line;       /* bytes of the trailer line being read */
};

/* Set up a reader; nothing allocated yet. Cannot fail. */
void hq__http1_init(struct hq__http1 *h, const struct hq__http1_config *cfg);
/* Free its buffers. */
void hq__http1_release(struct hq__http1 *h);
/* Get ready for the next request (buffers kept, unless large). */
void hq__http1_reset(struct hq__http1 *h);

/*
 * Feed `len` bytes; `*used` gets how many were taken (all of them for
 * HQ_HTTP1_MORE, up to the end of the header block or the request for
 * HEAD and DONE). On HQ_HTTP1_ERROR, `err` is filled.
 */
enum hq__http1_result hq__http1_feed(struct hq__http1 *h, const char *buf,
                                     size_t len, size_t *used,
                                     struct hq__http1_error *err);

/*
 * After HQ_HTTP1_HEAD and routing: check Expect and the body's announced
 * size. Returns 0 (then `*send_continue` says whether "100 Continue" is
 * owed, if no body byte has come yet), or -1 with `err` filled. With no
 * body to read, the next feed (of any bytes, even none) returns DONE.
 */
int hq__http1_body_start(struct hq__http1 *h, int *send_continue,
                         struct hq__http1_error *err);

/* True when the request has a body (the connection cannot be reused if
 * we answer without reading it). */
int hq__http1_has_body(const struct hq__http1 *h);

#endif /* HQ_HTTP1_INT_H */
