/*
 * HTTP calls on a libevent loop: libcurl's multi interface driven by the
 * loop (CURLMOPT_SOCKETFUNCTION and CURLMOPT_TIMERFUNCTION), so a call that
 * waits on the network holds no thread. One hq__http per event loop; it
 * keeps connections alive between calls to the same host.
 *
 * This is the only file that includes libcurl. Everything here runs on the
 * loop's thread: an hq__http and its calls are never shared across threads.
 */
#ifndef HQ_CURL_EVENT_INT_H
#define HQ_CURL_EVENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common_int.h"

struct event_base;
struct hq__http;
struct hq__http_call;

struct hq__http_request {
    const char *method;          /* "GET", "POST", ... */
    const char *url;             /* absolute http:// or https:// URL */
    const char *const *headers;  /* "Name: value" lines, or NULL */
    size_t nheaders;
    const void *body;            /* copied; NULL = no body */
    size_t body_len;
    int64_t timeout_ms;          /* whole call, connect included; 0 = none */
    size_t max_response;         /* body bytes kept; 0 = 16 MiB */
    /*
     * Optional: called with the call's `arg` once the connection is up and
     * the request is about to be written (CURLOPT_PREREQFUNCTION), i.e.
     * when the call leaves. It must not start or cancel calls.
     */
    void (*on_send)(void *arg);
};

enum hq__http_failure {
    HQ_HTTP_OK = 0,        /* a response arrived: see status */
    HQ_HTTP_TIMEOUT = 1,   /* timeout_ms passed */
    HQ_HTTP_CONNECT = 2,   /* could not connect (refused, unreachable, DNS) */
    HQ_HTTP_OTHER = 3,     /* any other transport failure */
};

struct hq__http_response {
    int failure;            /* enum hq__http_failure */
    int status;             /* HTTP status; 0 unless failure is HQ_HTTP_OK */
    const char *error;      /* what failed, when failure != HQ_HTTP_OK */
    const char *body;       /* NUL-terminated, body_len bytes */
    size_t body_len;
    const char *content_type; /* "" when absent */
    const char *location;   /* Location (redirects are not followed); "" */
    int64_t retry_after_ms; /* Retry-After (seconds or HTTP date); -1 absent */
    int64_t elapsed_ms;
};

/*
 * Called once per call on the loop thread when it ends; `resp` is valid
 * only during the callback. The call handle is freed after it returns (do
 * not cancel it from its own callback).
 */
typedef void hq__http_done_fn(const struct hq__http_response *resp,
                              void *arg);

/* Set up an hq__http on `base`. Returns HQ_OK or HQ_ENOMEM. */
int hq__http_new(struct event_base *base, struct hq__http **out);

/*
 * Free `h`: calls in flight are aborted and their callbacks are NOT called.
 * Must run on the loop thread, or after the loop stopped for good, and
 * before the event base is freed. Accepts NULL.
 */
void hq__http_free(struct hq__http *h);

/*
 * Start a call. `req` is borrowed (everything in it is copied). Returns
 * HQ_OK and, when `call` is non-NULL, the call's handle (valid until its
 * callback returns or it is cancelled); or HQ_ENOMEM / HQ_EINVAL with `err`
 * set. On failure `fn` is never called.
 */
int hq__http_send(struct hq__http *h, const struct hq__http_request *req,
                  hq__http_done_fn *fn, void *arg, struct hq__http_call **call,
                  struct hq__err *err);

/* Abort a call in flight; its callback is not called. */
void hq__http_cancel(struct hq__http_call *call);

/* Calls in flight on `h`. */
size_t hq__http_inflight(const struct hq__http *h);

/*
 * Parse a Retry-After value (delta-seconds or an HTTP date, relative to
 * `now_s` Unix seconds) into milliseconds, at least 0; -1 if malformed.
 */
int64_t hq__http_parse_retry_after(const char *value, int64_t now_s);

#endif /* HQ_CURL_EVENT_INT_H */
