/*
 * The API rate limiter (G7): at most R calls in any W ms per (token,
 * endpoint), shared through Redis by every worker. One script call
 * (limit.lua) checks the job's lease, reads the customer's token and grants
 * or refuses a call, atomically, just before the call is made. The state
 * lives in the customer's shard, beside the key's meta, so that all of it
 * is one script on one slot. docs/queue-semantics.md ("Rate limiter")
 * explains the algorithm and why it is strict.
 */
#ifndef HQ_LIMITER_INT_H
#define HQ_LIMITER_INT_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "common_int.h"
#include "conn_int.h"
#include "hookq/hookq.h"

struct hq__limit_rate {
    int calls;          /* R, >= 1 */
    int64_t window_ms;  /* W, >= 1 */
    int64_t margin_ms;  /* added to W between the first and the (R+1)-th call */
};

enum hq__limit_verdict {
    HQ_LIMIT_GO = 1,       /* granted: call now with `token` */
    HQ_LIMIT_WAIT = 0,     /* no budget: the earliest grant is in wait_ms */
    HQ_LIMIT_STALE = -1,   /* the job's lease is no longer current */
    HQ_LIMIT_NO_TOKEN = -2, /* the customer has no API token */
    HQ_LIMIT_ERROR = -3,   /* Redis failed: see error */
};

/*
 * A grant may be reserved up to this long ahead: when the budget opens
 * that soon, the call is granted for that moment and the job waits for it
 * on a timer (holding its slot that long at most) instead of being parked
 * and claimed again, which would come back late and waste the budget.
 */
#define HQ_LIMIT_LOOKAHEAD_MS 50
/* A job told to wait is parked this much less, so that it comes back
 * within the look-ahead, where its grant is reserved on time. */
#define HQ_LIMIT_EARLY_MS 30

struct hq__limit_answer {
    int verdict;         /* enum hq__limit_verdict */
    int64_t wait_ms;     /* HQ_LIMIT_WAIT: until the budget opens;
                            HQ_LIMIT_GO: until `at` (0 = call now) */
    int64_t at_ms;       /* HQ_LIMIT_GO: when to call (Redis TIME) */
    const char *token;   /* HQ_LIMIT_GO: NUL-terminated */
    size_t token_len;
    const char *error;   /* HQ_LIMIT_ERROR */
};

/* Called once with the answer; `a` is valid only during the call. */
typedef void hq__limit_fn(const struct hq__limit_answer *a, void *arg);

/*
 * Ask for one call of `customer` on `endpoint` for the job holding `key`
 * with fencing token `fence`, on `shard` through the connection `c`.
 * A grant is recorded as call `id` (unique within the shard for as long as
 * W: "<fence>/<fetch index>"), pending until hq__limit_sent(). Strings are
 * borrowed. Returns HQ_OK (then `fn` is called exactly once, with
 * HQ_LIMIT_ERROR when the connection fails) or HQ_ENOMEM / HQ_ESTORE (then
 * it is not).
 */
int hq__limit_take(struct hq__conn *c, unsigned shard, const char *key,
                   const char *fence, const char *customer,
                   const char *endpoint, const char *id,
                   const struct hq__limit_rate *rate, int64_t lookahead_ms,
                   hq__limit_fn *fn, void *arg);

/*
 * Call `id`, granted for `at_ms`, leaves now: record its real time (Redis
 * TIME) in place of the pessimistic one of the grant. Call it when the
 * request is about to be written. Fire and forget.
 */
int hq__limit_sent(struct hq__conn *c, unsigned shard,
                   const char *token, const char *endpoint, const char *id,
                   int64_t at_ms, const struct hq__limit_rate *rate);

/*
 * The API answered 429: grant nothing for (token, endpoint) before
 * now + delay_ms. Fire and forget (a lost block only costs another 429).
 */
int hq__limit_block(struct hq__conn *c, unsigned shard,
                    const char *token, const char *endpoint, int64_t delay_ms,
                    const struct hq__limit_rate *rate);

/*
 * The API rejected `token` of `customer` (401/403): record it, then call
 * `fn` (reply NULL when the connection failed) so the caller holds the
 * customer only after Redis knows which token the hold is about.
 */
int hq__limit_rejected(struct hq__conn *c, unsigned shard,
                       const char *customer, const char *token,
                       redisCallbackFn *fn, void *arg);

/*
 * May [api] token_command run for `customer` now? At most once per
 * `period_ms` across all workers (the state is in Redis). `fn` gets the
 * reply: {1} yes, {0} no (NULL when the connection failed).
 */
int hq__limit_refresh(struct hq__conn *c, unsigned shard,
                      const char *customer, int64_t period_ms,
                      redisCallbackFn *fn, void *arg);

/* How long a 429 pushes back: Retry-After if given (ms >= 0), else W; plus
 * the margin. */
int64_t hq__limit_backoff_429(const struct hq__limit_rate *rate,
                              int64_t retry_after_ms);

/*
 * Parse limit.lua's reply to "take" into `a` (token points into `r`).
 * Returns HQ_OK or HQ_EPROTO with a->verdict = HQ_LIMIT_ERROR.
 */
int hq__limit_parse(const redisReply *r, struct hq__limit_answer *a);

/*
 * The endpoint a call counts against: with `route_mode`, `route` ("GET
 * /posts/{}"); else method, a space and the concrete URL. Writes at most
 * `size` bytes (NUL included) into `buf`; returns HQ_OK or HQ_EINVAL when
 * it does not fit.
 */
int hq__limit_endpoint(int route_mode, const char *route, const char *method,
                       const char *url, char *buf, size_t size);

/* ------------------------------------------------------------------------ */
/* POST /api/limit: the application's own calls share the budget.           */

struct hq__limit_grant {
    int verdict;         /* HQ_LIMIT_GO, HQ_LIMIT_WAIT or HQ_LIMIT_NO_TOKEN */
    int64_t wait_ms;     /* HQ_LIMIT_WAIT: no budget for at least this long;
                            HQ_LIMIT_GO: the call is reserved for this much
                            later (0 = now), at most the look-ahead */
    int64_t expect_ms;   /* HQ_LIMIT_WAIT: when it is expected (calls not
                            yet sent counted as leaving on time), <= wait_ms */
    int64_t at_ms;       /* HQ_LIMIT_GO: the moment granted */
    char *token;         /* HQ_LIMIT_GO: the token, for
                            hq__limit_grant_sent(); the caller frees it */
};

/*
 * Ask for one call now on (token, endpoint), the token given or read from
 * `customer`'s (exactly one of `customer` and `token` is non-NULL), or
 * when the budget opens within `lookahead_ms`, reserved for that moment
 * (as a fetch's grant is: an application waiting competes with hookq's
 * jobs on equal terms); a granted call is recorded as call `id` (unique
 * for W), pending until hq__limit_grant_sent() says when it was answered.
 * Synchronous, on the blocking connection `c`, in the customer's shard of
 * c->ns (a token alone: shard 0, so the caller allows it only with one
 * shard). Returns HQ_OK with `g` filled, or HQ_ESTORE / HQ_ENOMEM /
 * HQ_EPROTO with the reason in `err`.
 */
int hq__limit_grant(struct hq__sconn *c, const char *customer,
                    const char *token, const char *endpoint, const char *id,
                    const struct hq__limit_rate *rate, int64_t lookahead_ms,
                    struct hq__limit_grant *g, struct hq__err *err);

/*
 * Grant `id` of hq__limit_grant() has been answered (its bytes written):
 * record that moment, as hq__limit_sent() does for a fetch. Synchronous,
 * as hq__limit_grant().
 */
int hq__limit_grant_sent(struct hq__sconn *c, const char *customer,
                         const char *token, const char *endpoint,
                         const char *id, int64_t at_ms,
                         const struct hq__limit_rate *rate,
                         struct hq__err *err);

/*
 * The endpoint an application names ("GET /posts/{post_id}") as hookq's
 * fetches count it: the method in capitals, one space, then with
 * `route_mode` the path with each {…} as {} (a full URL under `base_url`
 * is cut to its path); else the concrete URL (a path gets `base_url` in
 * front). Returns HQ_OK, or HQ_EINVAL with the reason in `err` (no method,
 * no path, an unclosed '{', control characters, too long for `size`).
 */
int hq__limit_endpoint_norm(int route_mode, const char *base_url,
                            const char *in, char *buf, size_t size,
                            struct hq__err *err);

#endif /* HQ_LIMITER_INT_H */
