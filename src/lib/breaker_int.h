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
 * The worker asks before an attempt (check) and reports after it: every
 * failure (fail), and an answer only when the check saw failures or made
 * it the probe (ok). A loop keeps a view of each target (struct
 * hq__breaker_view, below) so that a healthy target costs no call per
 * attempt: about one `peek` a second per loop and target instead.
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
struct hq__breaker_view;

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
 * goes to shard 0 on `c`. Each of these calls updates the view `v` (may be
 * NULL; else it must outlive the call) from its answer before `fn` runs.
 * Returns HQ_OK (fn called later) or HQ_ENOMEM / HQ_ESTORE (fn never
 * called).
 */
int hq__breaker_check(struct hq__conn *c, struct hq__breaker_view *v,
                      const char *target, const char *id, int64_t lease_ms,
                      hq__breaker_fn *fn, void *arg);

/* The target answered (2xx, 3xx, 4xx, exit 0, ...). `fn` may be NULL. */
int hq__breaker_ok(struct hq__conn *c, struct hq__breaker_view *v,
                   const char *target, const char *id, hq__breaker_fn *fn,
                   void *arg);

/* The target failed as the breaker counts it; `error` says how. */
int hq__breaker_fail(struct hq__conn *c, struct hq__breaker_view *v,
                     const char *target, const char *id,
                     const struct hq__breaker_cfg *cfg, const char *error,
                     hq__breaker_fn *fn, void *arg);

/* Parse a reply of breaker.lua for `op` ("check", "peek", "ok" or "fail"). */
int hq__breaker_parse(const char *op, const redisReply *r,
                      struct hq__breaker_answer *a);

/*
 * One event loop's view of one target's breaker, so that a healthy target
 * costs no Redis call per attempt (and does not tie every shard's
 * deliveries to shard 0's master, which holds every target's state).
 *
 * DESIGN: per loop, not per process. A loop already owns its Redis
 * connection and runs its jobs on one thread, so its views need no lock
 * and are updated in the order its one connection to shard 0 answers;
 * the price is one peek a second per loop rather than per process, which
 * is nothing next to a call per job.
 *
 * The view is "clean" after Redis said the target is up with no failure
 * counted (a check's {1, 0}, a peek's, or an ok report), and "dirty" after
 * any other answer (failures seen, down, a probe, a failure reported). A
 * call that failed (Redis down, a failover) leaves the view as it was:
 * a target seen healthy keeps its deliveries while shard 0 has no master.
 *
 * hq__breaker_view_plan() decides, from the view and `now`:
 *  - clean and fresher than HQ_BREAKER_VIEW_FRESH_MS: go, no call;
 *  - clean but older: go all the same, and peek in the background (no job
 *    waits for it) unless a peek is in flight or one was sent less than
 *    HQ_BREAKER_VIEW_FRESH_MS ago: stale-while-revalidate;
 *  - unknown or dirty: check with Redis and wait for its verdict, as every
 *    attempt did before (probes are coordinated across processes there).
 * What is given up: another process's trip is seen here within about a
 * second, or at this loop's first failure (which asks Redis and parks the
 * job, "down already", without counting an attempt).
 */
#define HQ_BREAKER_VIEW_FRESH_MS 1000

enum hq__breaker_view_state {
    HQ_BREAKER_VIEW_UNKNOWN = 0, /* never answered */
    HQ_BREAKER_VIEW_CLEAN,       /* up, no failure counted */
    HQ_BREAKER_VIEW_DIRTY,       /* failures seen, or down */
};

struct hq__breaker_view {
    int state;        /* enum hq__breaker_view_state */
    int peeking;      /* a peek is in flight */
    int64_t seen_ms;  /* when the last clean answer came (monotonic) */
    int64_t asked_ms; /* when the last peek was sent */
};

enum hq__breaker_plan {
    HQ_BREAKER_PLAN_CHECK = 0, /* check, and wait for the verdict */
    HQ_BREAKER_PLAN_GO,        /* go now, no call */
    HQ_BREAKER_PLAN_GO_PEEK,   /* go now, and peek in the background */
};

/* What a gate does now (enum hq__breaker_plan). Pure. */
int hq__breaker_view_plan(const struct hq__breaker_view *v, int64_t now_ms);

/* Learn from the answer `a` of `op` that came at `now_ms`. An answer of
 * HQ_BREAKER_ERROR changes nothing but ends the peek in flight. Pure. */
void hq__breaker_view_learn(struct hq__breaker_view *v, const char *op,
                            const struct hq__breaker_answer *a,
                            int64_t now_ms);

/*
 * Send a peek of `target` for view `v` (which must outlive the call: its
 * answer, or the connection's end, updates it) and mark it sent at
 * `now_ms`. A peek takes no probe and counts nothing. Returns HQ_OK or
 * HQ_ENOMEM / HQ_ESTORE (nothing sent, the view unchanged).
 */
int hq__breaker_peek(struct hq__conn *c, struct hq__breaker_view *v,
                     const char *target, int64_t now_ms);

#endif /* HQ_BREAKER_INT_H */
