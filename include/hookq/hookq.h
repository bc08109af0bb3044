/*
 * hookq — keyed FIFO job queue on Redis, and the C API of the hookq daemon.
 *
 * Jobs are pushed under a key "<customer>:<code>". Jobs of one key run one at
 * a time, in push order, across every worker thread, process and host; jobs
 * of different keys run in parallel. Ready keys are served round-robin,
 * customer first, then key. Redis is the only shared state: see
 * docs/queue-semantics.md for the layout and every state transition.
 *
 * Two handles:
 *   hq_client  a synchronous Redis connection: push jobs, administer the
 *              queue (hold, release, dead letters, tokens, stats). One thread
 *              at a time.
 *   hq_worker  a pool of event-loop threads that lease keys and run a
 *              handler on each key's head job.
 *
 * Errors: 0 is success, failures are negative HQ_E* codes; hq_strerror()
 * names a code and hq_client_errmsg() / hq_worker_errmsg() give the detail of
 * the handle's last failure.
 */
#ifndef HQ_HOOKQ_H
#define HQ_HOOKQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(HQ_BUILDING)
#define HQ_API __attribute__((visibility("default")))
#else
#define HQ_API
#endif

enum hq_error {
    HQ_OK = 0,
    HQ_EINVAL = -1,    /* an argument is out of its domain */
    HQ_ENOMEM = -2,    /* out of memory */
    HQ_ESTORE = -3,    /* Redis unreachable, or it answered with an error */
    HQ_EFULL = -4,     /* the key holds max_key_depth jobs already */
    HQ_ESTALE = -5,    /* the lease is no longer ours (fencing token) */
    HQ_ENOTFOUND = -6, /* no such key, job or dead letter */
    HQ_ECONFIG = -7,   /* invalid configuration */
    HQ_EPROTO = -8,    /* Redis answered something we do not understand */
    HQ_EIO = -9,       /* a system call failed */
};

/* The name of an HQ_E* code, e.g. "redis unavailable". Never NULL. */
HQ_API const char *hq_strerror(int rc);

/* The library version, "MAJOR.MINOR.PATCH". */
HQ_API const char *hq_version(void);

/* ------------------------------------------------------------------------ */
/* Where the queue lives.                                                    */

struct hq_store_options {
    const char *url;       /* redis://[:password@]host:port[/db] or unix:///path[?db=N] */
    const char *ns;        /* namespace, "hookq" when NULL */
    unsigned shards;       /* hash-tagged shards, 1 when 0 */
    int timeout_ms;        /* connect and command timeout, 5000 when 0 */
};

/* ------------------------------------------------------------------------ */
/* Client: push and administer.                                             */

typedef struct hq_client hq_client;

/*
 * Allocate a client and connect it. On success stores the handle in `*out`
 * and returns HQ_OK. On a connection failure still stores a handle whose
 * hq_client_errmsg() says why, and returns HQ_ESTORE; the caller frees it.
 */
HQ_API int hq_client_new(const struct hq_store_options *opts, hq_client **out);
HQ_API void hq_client_free(hq_client *c);
/* Detail of the last failure; owned by `c`, valid until the next call. */
HQ_API const char *hq_client_errmsg(const hq_client *c);

struct hq_push {
    const char *customer; /* required, non-empty */
    size_t customer_len;
    const char *code;     /* required, non-empty; key = customer ":" code */
    size_t code_len;
    const void *body;     /* stored as given */
    size_t body_len;
    const char *webhook_id; /* optional: deduplicate by it */
    size_t webhook_id_len;
};

struct hq_push_limits {
    int64_t max_key_depth; /* jobs per key, the one in flight included; 0 = none */
    int64_t dedup_ttl_ms;  /* how long a webhook_id is remembered; 0 = 24 h */
};

enum hq_push_status {
    HQ_PUSH_STORED = 0,    /* appended behind the key's earlier jobs */
    HQ_PUSH_DUPLICATE = 1, /* webhook_id seen within dedup_ttl; id = first job's */
    HQ_PUSH_FULL = 2,      /* key over max_key_depth; nothing stored */
};

struct hq_push_result {
    int status;      /* enum hq_push_status */
    char id[48];     /* job id, NUL-terminated */
    int64_t seq;     /* per-key sequence number, from 1 (0 unless STORED) */
};

/*
 * Append one job to its key, with dedup and the depth check, atomically.
 * `p` and `limits` are borrowed (limits may be NULL). Returns HQ_OK and fills
 * `*res` (status says stored, duplicate or full), or HQ_EINVAL (empty customer
 * or code) or HQ_ESTORE.
 */
HQ_API int hq_client_push(hq_client *c, const struct hq_push *p,
                          const struct hq_push_limits *limits,
                          struct hq_push_result *res);

/*
 * Push `n` jobs in one pipeline. Fills res[0..n-1]. Jobs of one key keep
 * their order in the array. Returns HQ_OK when Redis answered every push.
 */
HQ_API int hq_client_push_many(hq_client *c, const struct hq_push *p, size_t n,
                               const struct hq_push_limits *limits,
                               struct hq_push_result *res);

/* ------------------------------------------------------------------------ */
/* Worker: lease keys, run a handler on each key's head job.                */

typedef struct hq_worker hq_worker;
typedef struct hq_job hq_job;

/*
 * Called on a worker loop thread for the head job of a leased key. The handler
 * must, now or later but on that same thread, settle the job with exactly one
 * of hq_job_done(), hq_job_retry(), hq_job_fail(), hq_job_park() or
 * hq_job_hold(). Until then the key stays leased (the lease is renewed) and no
 * other job of the key runs. While it waits on I/O the handler returns, so the
 * thread serves other keys: use hq_job_loop() for libevent events.
 */
typedef void hq_handler_fn(hq_job *job, void *arg);

enum hq_failure_policy {
    HQ_ON_FAILURE_DEADLETTER = 0, /* move to the dead-letter list, go on */
    HQ_ON_FAILURE_HOLD = 1,       /* hold the key until released */
};

struct hq_worker_options {
    struct hq_store_options store;
    unsigned concurrency;     /* keys in flight per process, 64 when 0 */
    unsigned threads;         /* event loops, 2 when 0 */
    int64_t lease_ms;         /* 30000 when 0 */
    int max_attempts;         /* 8 when 0 */
    int64_t backoff_min_ms;   /* 1000 when 0 */
    int64_t backoff_max_ms;   /* 600000 when 0 */
    int on_failure;           /* enum hq_failure_policy */
    int64_t shutdown_timeout_ms; /* 30000 when 0 */
    hq_handler_fn *handler;   /* required */
    void *handler_arg;
};

/* Allocate a worker; nothing runs until hq_worker_start(). */
HQ_API int hq_worker_new(const struct hq_worker_options *opts, hq_worker **out);
/* Start the loop threads. Returns HQ_OK, or HQ_ESTORE when Redis is down. */
HQ_API int hq_worker_start(hq_worker *w);
/*
 * Ask the worker to stop: claim nothing more, let jobs in flight finish for up
 * to shutdown_timeout_ms, then hand the leases of the rest back so that their
 * keys run again at once elsewhere. Async-signal-safe; returns at once.
 */
HQ_API void hq_worker_stop(hq_worker *w);
/* Wait until the loop threads have exited after hq_worker_stop(). */
HQ_API void hq_worker_join(hq_worker *w);
HQ_API void hq_worker_free(hq_worker *w);
HQ_API const char *hq_worker_errmsg(const hq_worker *w);

/* Accessors, valid until the job is settled. Strings are NUL-terminated. */
HQ_API const char *hq_job_id(const hq_job *job);
HQ_API const char *hq_job_key(const hq_job *job);
HQ_API const char *hq_job_customer(const hq_job *job);
HQ_API const char *hq_job_code(const hq_job *job);
HQ_API int64_t hq_job_seq(const hq_job *job);
HQ_API int hq_job_attempt(const hq_job *job);        /* 1 on the first run */
HQ_API int64_t hq_job_received_at_ms(const hq_job *job); /* Redis TIME, ms */
HQ_API const char *hq_job_webhook_id(const hq_job *job); /* "" when none */
HQ_API const void *hq_job_body(const hq_job *job, size_t *len);
/* The libevent base (struct event_base *) of the job's loop thread. */
HQ_API void *hq_job_loop(const hq_job *job);
/* A pointer the handler may keep with the job, NULL at first. */
HQ_API void *hq_job_userdata(const hq_job *job);
HQ_API void hq_job_set_userdata(hq_job *job, void *ud);
/* The failure policy for this job when its attempts run out. */
HQ_API void hq_job_set_policy(hq_job *job, int on_failure);

/* Settle. Each ends the handler's use of `job`. `error` is copied. */
HQ_API void hq_job_done(hq_job *job);
/* Transient failure: back off, run again; after max_attempts, the policy. */
HQ_API void hq_job_retry(hq_job *job, const char *error);
/* Permanent failure: the policy now (dead-letter or hold). */
HQ_API void hq_job_fail(hq_job *job, const char *error);
/* Not now: run again after delay_ms, the attempt not counted. */
HQ_API void hq_job_park(hq_job *job, int64_t delay_ms);
/*
 * Hold the key with `reason` until released. With `customer_wide`, every key
 * of the job's customer is held too until hq_client_release_customer() (or
 * setting the customer's token, for reasons "token-invalid" and "no-token").
 */
HQ_API void hq_job_hold(hq_job *job, const char *reason, int customer_wide);

#ifdef __cplusplus
}
#endif
#endif /* HQ_HOOKQ_H */
