/*
 * The circuit breaker of delivery and fetch targets (DESIGN §3.4 step 3).
 *
 * A target is an http delivery's "scheme://host:port", an exec program
 * ("exec:/path") or api.base_url's origin for fetches. Its state lives in
 * Redis (scripts/breaker.lua, in shard 0's slot), so it is one state for
 * every worker: `breaker` consecutive failures (no connection, timeout,
 * 5xx, exec exit 75) mark it down; while down, jobs are parked without an
 * attempt counted, and one job at a time probes it at the `probe` backoff;
 * the first answer from it brings it up.
 *
 * The worker asks before each attempt (check) and reports after it: every
 * failure (fail), and an answer only when the check saw failures or made
 * it the probe (ok), so a healthy target costs one script call per attempt.
 * Everything here runs on the caller's loop thread (async) or, for the
 * operator's view, on a synchronous connection.
 */
#ifndef HQ_BREAKER_INT_H
#define HQ_BREAKER_INT_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "common_int.h"

struct hq__conn;

#define HQ_TARGET_MAX 600 /* bytes of a target name, NUL included */

struct hq__breaker_cfg {
    int threshold;        /* consecutive failures that trip it; 0 = off */
    int64_t probe_min_ms; /* the first probe after it went down */
    int64_t probe_max_ms; /* doubling up to this */
};

enum hq__breaker_verdict {
    HQ_BREAKER_GO = 1,    /* up: try it */
    HQ_BREAKER_PROBE = 2, /* down, and this job is the probe: try it */
    HQ_BREAKER_WAIT = 0,  /* down: park for wait_ms, no attempt counted */
    HQ_BREAKER_ERROR = -1, /* Redis failed: try it as if there were none */
};

/*
 * The answer of a check (n = consecutive failures so far) or of a report.
 * For a failure: counted = 1 when it is an attempt as usual (the target was
 * up), changed = 1 when it marked the target down; counted = 0 means park
 * for wait_ms. For a success: changed = 1 when it brought the target up
 * after down_ms. `probes`: failed probes since it went down.
 */
struct hq__breaker_answer {
    int verdict;          /* check: enum hq__breaker_verdict */
    int counted;
    int changed;
    int64_t n;
    int64_t wait_ms;
    int64_t down_ms;
    int64_t probes;
};

/* Called once; `a` is valid during the call. On a lost connection the
 * verdict is HQ_BREAKER_ERROR. */
typedef void hq__breaker_fn(const struct hq__breaker_answer *a, void *arg);

/*
 * May the job `id` try `target` now? `lease_ms`: how long a probe may take
 * before another job may probe (the attempt's timeout plus slack). The call
 * goes to shard 0 on `c`. Returns HQ_OK (fn called later) or HQ_ENOMEM /
 * HQ_ESTORE (fn never called).
 */
int hq__breaker_check(struct hq__conn *c, const char *target, const char *id,
                      int64_t lease_ms, hq__breaker_fn *fn, void *arg);

/* The target answered (2xx, 3xx, 4xx, exit 0, ...). `fn` may be NULL. */
int hq__breaker_ok(struct hq__conn *c, const char *target, const char *id,
                   hq__breaker_fn *fn, void *arg);

/* The target failed as the breaker counts it; `error` says how. */
int hq__breaker_fail(struct hq__conn *c, const char *target, const char *id,
                     const struct hq__breaker_cfg *cfg, const char *error,
                     hq__breaker_fn *fn, void *arg);

/* Parse a reply of breaker.lua for `op` ("check", "ok" or "fail"). */
int hq__breaker_parse(const char *op, const redisReply *r,
                      struct hq__breaker_answer *a);

#endif /* HQ_BREAKER_INT_H */
