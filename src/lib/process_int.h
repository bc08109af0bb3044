/*
 * What a worker does with a job (DESIGN §3.4): the handler behind
 * `hookq work` and `hookq run`.
 *
 * For the job's [event CODE] section: each `fetch` line in order is filled
 * from the webhook, granted by the rate limiter (which also checks that the
 * job's lease is current and reads the customer's token, in one script),
 * and called with `Authorization: Bearer <token>`; then the payload
 *   {"id","key","customer","code","seq","attempt","received_at","data","fetched"}
 * is delivered (http, exec or log), and the job is settled:
 *
 *   outcome                                   settles with
 *   delivered                                 hq_job_done
 *   no budget for a fetch                     hq_job_park (until the grant)
 *   fetch 429                                 hq_job_park (Retry-After or W)
 *   fetch 401/403                             hq_job_hold "token-invalid", this key only
 *   customer has no token                     hq_job_hold "no-token", this key only
 *   fetch other 4xx, missing template field,  hq_job_fail (the event's policy)
 *     delivery 4xx (not 408/429), exec exit
 *     other than 0/75, unknown code, bad body
 *   fetch 5xx/timeout/connection error,       hq_job_retry (backoff, attempt counted)
 *     delivery 5xx/408/429/timeout, exec 75
 *
 * Nothing waits on a thread: Redis, HTTP and exec children all run on the
 * job's loop (hq_job_loop()). Each loop gets its own HTTP client (libcurl
 * multi) and Redis connection, set up by hq__process_loop_init() and freed by
 * hq__process_loop_fini(), which the worker calls on the loop thread.
 */
#ifndef HQ_PROCESS_H
#define HQ_PROCESS_H

#include "hookq/hookq.h"
#include "config_int.h"
#include "metrics_int.h"

struct hq__process;

/* How a fetch ended, for /metrics: the index of api_calls[]. */
enum hq__api_result {
    HQ_API_2XX = 0,
    HQ_API_429,       /* the job parked; the (token, endpoint) slowed down */
    HQ_API_AUTH,      /* 401/403: the customer held */
    HQ_API_4XX,       /* other 4xx: failed */
    HQ_API_5XX,       /* 5xx and other statuses: retried */
    HQ_API_ERROR,     /* connection error or timeout: retried */
    HQ_API_NRESULTS
};

/* Processing's counters since start, updated from the loop threads. */
struct hq__process_metrics {
    _Atomic uint64_t api_calls[HQ_API_NRESULTS];
    struct hq__hist api_duration;     /* a fetch: sent -> answered */
    _Atomic uint64_t deliveries[3];  /* done, retry, failed */
    struct hq__hist attempt_duration; /* handler got the job -> settled */
    struct hq__hist job_latency;      /* received (Redis TIME) -> delivered */
};

/*
 * Prepare processing for `cfg` (borrowed: it must outlive the process; its
 * events' templates, targets and keys are used as config.c parsed them):
 * open the log:FILE of log deliveries. `store` is the Redis the worker uses
 * (ns, shards, timeout; borrowed) and `addr` the same, parsed (copied). On
 * failure returns HQ_EINVAL / HQ_EIO / HQ_ENOMEM and writes the reason,
 * naming the event, into `err`.
 */
int hq__process_new(const struct hq__config *cfg,
                   const struct hq_store_options *store,
                   const struct hq__store_addr *addr,
                   struct hq__process **out, char *err, size_t errsize);

/*
 * Free `p`: after hq_worker_join() (its loops have exited). Accepts NULL.
 */
void hq__process_free(struct hq__process *p);

/*
 * Fill the handler, policy and loop-hook fields of `o` with `p`'s, and
 * `log`/`log_arg` (may be NULL) as where processing failures are reported.
 */
void hq__process_worker_options(struct hq__process *p,
                               struct hq_worker_options *o);

/* The hq_handler_fn; `arg` is the hq__process. */
void hq__process_handle(hq_job *job, void *arg);

/* The hq_policy_fn: the on_failure of the job's event. */
int hq__process_policy(const hq_job *job, void *arg);

/* Per-loop set-up and tear-down, on the loop thread. */
void *hq__process_loop_init(void *base, void *arg);
void hq__process_loop_fini(void *base, void *loop_state, void *arg);

/* Where processing logs failures (the worker's hq_log_fn); may be NULL. */
void hq__process_set_log(struct hq__process *p, hq_log_fn *log, void *arg);
/*
 * The same with fields (key, job, customer, code, attempt, outcome, ms,
 * error, ...) apart from the message; replaces hq__process_set_log().
 */
void hq__process_set_log_kv(struct hq__process *p, hq_log_kv_fn *log, void *arg);

/* The counters; read them from any thread. */
const struct hq__process_metrics *hq__process_metrics(const struct hq__process *p);
/* "2xx", "429", "401_403", "4xx", "5xx", "error". */
const char *hq__process_api_result_name(int result);

/*
 * Format `ms` (Unix ms) as RFC 3339 UTC with milliseconds,
 * "2026-11-26T23:24:09.123Z", into buf (at least 25 bytes).
 */
void hq__process_rfc3339(int64_t ms, char *buf, size_t size);

#endif /* HQ_PROCESS_H */
