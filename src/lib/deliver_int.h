/*
 * Delivery of a processed job (DESIGN §3.4 step 2), to one of three
 * targets given by an event's `deliver` line:
 *
 *   http://... (or https://)  POST the payload (application/json) with
 *              headers Hookq-Id, Hookq-Key, Hookq-Seq, Hookq-Attempt, and
 *              with a secret the Standard Webhooks headers webhook-id (the
 *              job id), webhook-timestamp and webhook-signature.
 *              2xx = done; 4xx but 408 and 429 = permanent; else retry.
 *              A 3xx is not followed: a retry whose error names Location.
 *   exec:/path [ARG...]  run the program with the payload on stdin (and
 *              HOOKQ_ID, HOOKQ_KEY, HOOKQ_SEQ, HOOKQ_ATTEMPT in its
 *              environment). Exit 0 = done, 75 (EX_TEMPFAIL) = retry, other
 *              = permanent. Past the timeout its process group is killed
 *              and the attempt retried. It never blocks the loop: the pipes
 *              are watched by libevent and the child is reaped.
 *   log, log:FILE  one JSON line per job to stdout or appended to FILE.
 *
 * Everything runs on the loop thread of the job.
 */
#ifndef HQ_DELIVER_INT_H
#define HQ_DELIVER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common_int.h"
#include "signature_int.h"

struct event_base;
struct hq__http;
struct hq__deliver;
struct hq__delivery;

enum hq__outcome {
    HQ_OUTCOME_DONE = 0,
    HQ_OUTCOME_RETRY = 1, /* transient: back off and run again */
    HQ_OUTCOME_FAIL = 2,  /* permanent: the event's failure policy now */
};

/* What is delivered; everything is borrowed for the call to start only. */
struct hq__delivery_job {
    const char *id;
    const char *key;
    int64_t seq;
    int attempt;
    const char *payload; /* the JSON document */
    size_t payload_len;
    int64_t timeout_ms;  /* http and exec; 0 = none */
    const struct hq__sig_key *key_sig; /* http: sign; NULL = unsigned */
    int log_fd;          /* log targets: from hq__deliver_log_open() */
};

/*
 * Called once on the loop thread with the outcome and, unless done, what
 * went wrong ("http 503 from 'http://...'"; valid during the call only).
 * `target_failed` is 1 when the failure is one the circuit breaker counts
 * (no connection, a timeout, a 5xx, exit 75 or an exec run past its
 * timeout), 0 when the target answered (done, 3xx, 4xx) or for log targets.
 */
typedef void hq__deliver_fn(int outcome, int target_failed, const char *error,
                            void *arg);

/*
 * Parse a `deliver` line (config.c does, once per event). No I/O: the file
 * of log:FILE is opened by hq__deliver_log_open(). Returns HQ_OK, or
 * HQ_EINVAL / HQ_ENOMEM with `err` set.
 */
int hq__deliver_parse(const char *spec, struct hq__deliver **out,
                      struct hq__err *err);
void hq__deliver_free(struct hq__deliver *d);

/*
 * The descriptor a log target writes to, into `*fd`: 1 (stdout) for log,
 * FILE opened for appending (created 0644) for log:FILE, -1 for other
 * targets. The caller closes a descriptor above 2. Returns HQ_OK, or
 * HQ_EIO with `err` set.
 */
int hq__deliver_log_open(const struct hq__deliver *d, int *fd,
                         struct hq__err *err);

/*
 * Deliver `job`. Returns HQ_OK and calls `fn` exactly once later (for log
 * targets: before returning), and stores a handle in `*call` unless the
 * delivery already ended; or returns an error (ENOMEM, EIO) without calling
 * `fn`. `http` is the loop's HTTP client (used by http:// targets).
 */
int hq__deliver_start(const struct hq__deliver *d, struct event_base *base,
                      struct hq__http *http, const struct hq__delivery_job *job,
                      hq__deliver_fn *fn, void *arg,
                      struct hq__delivery **call, struct hq__err *err);

/*
 * Abandon a delivery in flight: its callback is not called; an exec child
 * is killed and reaped. Accepts NULL.
 */
void hq__deliver_cancel(struct hq__delivery *call);

/*
 * The circuit breaker's name for the target of `d` into `buf`:
 * "scheme://host:port" for http (the port made explicit), "exec:/path" for
 * exec. Returns 1, or 0 for log targets (no breaker) or when `buf` is short.
 */
int hq__deliver_target(const struct hq__deliver *d, char *buf, size_t size);

/*
 * "scheme://host:port" of an http(s) URL (userinfo, path, query dropped;
 * scheme and host lower-cased; port 80 or 443 when absent) into `buf`.
 * Returns HQ_OK, or HQ_EINVAL when `url` is not http(s) or `buf` is short.
 */
int hq__url_origin(const char *url, char *buf, size_t size);

/* The outcome of an HTTP status of a delivery (0 = no response: retry). */
int hq__deliver_http_outcome(int status);

#endif /* HQ_DELIVER_INT_H */
