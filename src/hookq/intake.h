/*
 * The intake server: `POST <intake.path>` of DESIGN §3.3.
 *
 * intake.threads event loops accept on one listening socket; each loop has
 * one async Redis connection shared by all of its requests in flight, so
 * their enqueue scripts pipeline. A request is answered 2xx only after Redis
 * replied that the job is stored (G5). See docs/intake.md.
 *
 * Usage:
 *     in = hk_intake_start(cfg, &store, &addr, &hooks, err, sizeof(err));
 *     ...                        (serve until SIGTERM)
 *     hk_intake_stop(in);        (stop accepting, finish requests, join)
 *     hk_intake_free(in);
 */
#ifndef HQ_INTAKE_H
#define HQ_INTAKE_H

#include <stddef.h>
#include <stdint.h>

#include "hookq/hookq.h"
#include "config_int.h"

struct hk_intake;

/*
 * Optional callbacks. `log` (hookq.h's hq_log_fn, levels HQ_LOG_*) is
 * called from the loop threads (concurrently from several of them), only
 * for levels up to `log_level`: HQ_LOG_DEBUG is one line per request,
 * HQ_LOG_INFO listening and Redis connected, HQ_LOG_WARN Redis lost and
 * the connection limit. `msg` is a single line without a newline, valid
 * during the call, and never contains the signing secret.
 */
struct hk_intake_hooks {
    hq_log_fn *log;
    void *arg;
    int log_level; /* the most verbose HQ_LOG_* passed on */
};

/* Why requests were refused; the index of hk_intake_stats.rejected[]. */
enum hk_intake_reason {
    HQ_INTAKE_BAD_REQUEST = 0,   /* 400 malformed HTTP (Content-Length, ...) */
    HQ_INTAKE_INVALID_JSON,      /* 400 */
    HQ_INTAKE_MISSING_CODE,      /* 400 */
    HQ_INTAKE_MISSING_DATA,      /* 400 */
    HQ_INTAKE_MISSING_CUSTOMER,  /* 400 */
    HQ_INTAKE_BAD_SIGNATURE,     /* 401 */
    HQ_INTAKE_NOT_FOUND,         /* 404 */
    HQ_INTAKE_METHOD,            /* 405 / 501 */
    HQ_INTAKE_BODY_TOO_LARGE,    /* 413 */
    HQ_INTAKE_UNKNOWN_CODE,      /* 422 */
    HQ_INTAKE_KEY_FULL,          /* 429 */
    HQ_INTAKE_HEADER_TOO_LARGE,  /* 431 */
    HQ_INTAKE_REDIS_UNAVAILABLE, /* 503 */
    HQ_INTAKE_TIMEOUT,           /* connection cut: headers or body too slow */
    HQ_INTAKE_CONN_LIMIT,        /* connection refused: max_connections */
    HQ_INTAKE_NOT_REPLICATED,    /* 503: stored, but WAIT saw too few replicas */
    HQ_INTAKE_NREASONS
};

/* Counters since start, summed over the loops. */
struct hk_intake_stats {
    uint64_t accepted;   /* 202: stored */
    uint64_t duplicate;  /* 200: webhook-id seen within dedup_ttl */
    uint64_t rejected[HQ_INTAKE_NREASONS];
    uint64_t connections; /* open now */
    int redis_oom;        /* 1: Redis refused a loop's last enqueue for memory */
};

/*
 * Bind intake.listen and start intake.threads loops serving requests.
 * `cfg` is borrowed and must outlive the intake (events are looked up in it
 * per request); `store` (ns, shards, timeout; may be NULL) and `addr`, where
 * Redis is, parsed, are copied; `hooks` may be NULL and is copied.
 * A Redis that is down at start is not an error: requests get 503 until it
 * answers. Returns the intake, or NULL with the reason in `err` (an
 * address that cannot be bound, a port in use, a bad store url).
 */
struct hk_intake *hk_intake_start(const struct hq__config *cfg,
                                  const struct hq_store_options *store,
                                  const struct hq__store_addr *addr,
                                  const struct hk_intake_hooks *hooks,
                                  char *err, size_t errsize);

/* The TCP port listened on (useful with listen = 127.0.0.1:0). */
int hk_intake_port(const struct hk_intake *in);

/*
 * Stop accepting connections, let requests in flight get their answers
 * (waiting for Redis at most ~2 s), close idle keep-alive connections, and
 * join the loop threads. Call once, from any thread but a loop thread; not
 * async-signal-safe. NULL is accepted.
 */
void hk_intake_stop(struct hk_intake *in);

/* Free the intake after hk_intake_stop(). NULL is accepted. */
void hk_intake_free(struct hk_intake *in);

/* Fill `out` with the counters; safe from any thread while serving. */
void hk_intake_stats(const struct hk_intake *in, struct hk_intake_stats *out);

/*
 * The time from a complete request to its answer being written (the Redis
 * round trip for a stored job), summed over the loops. Any thread.
 */
struct hq__hist_snap;
void hk_intake_latency(const struct hk_intake *in, struct hq__hist_snap *out);

/* The metric label of a reason: "invalid_json", "conn_limit", ... */
const char *hk_intake_reason_name(int reason);

#endif /* HQ_INTAKE_H */
