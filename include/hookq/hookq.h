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
    const char *url;       /* redis://[[user]:password@]host:port[,host:port...][/db]
                              (several hosts: a Redis Cluster) or unix:///path[?db=N] */
    const char *ns;        /* namespace, "hookq" when NULL */
    unsigned shards;       /* hash-tagged shards, 1 when 0 */
    int timeout_ms;        /* connect and command timeout, 5000 when 0 */
    const char *sentinels; /* "host:port[,host:port...]": ask these Redis
                              Sentinels for the master (url then gives only
                              user, password and db); NULL = none */
    const char *sentinel_master; /* its name at the Sentinels, "hookq" when NULL */
    const char *sentinel_user;     /* Sentinels with ACL users: AUTH as this
                                      user; NULL = the default user */
    const char *sentinel_password; /* set: every connection to a Sentinel
                                      sends AUTH first (its requirepass);
                                      NULL = none. Needs `sentinels` */
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

/*
 * Progress of a long call (hq_client_dlq_retry_all(), _drop_all()): `done`
 * of `total` items so far, called after each batch on the caller's thread.
 */
typedef void hq_progress_fn(const char *what, size_t done, size_t total,
                            void *arg);
/* Report the progress of long calls to `fn` (NULL: to no one). */
HQ_API void hq_client_set_progress(hq_client *c, hq_progress_fn *fn, void *arg);

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
/* Administration: hold and release, dead letters, tokens, stats, keys,    */
/* peek. Each call that changes the queue is one atomic script: see        */
/* docs/queue-semantics.md, and docs/operations.md for the commands. Keys  */
/* are "customer:code" strings and customers plain strings, NUL-terminated.*/
/* Every call returns HQ_OK or a negative HQ_E* code with the detail in    */
/* hq_client_errmsg(): HQ_EINVAL for a malformed argument, HQ_ENOTFOUND    */
/* for an unknown key or dead letter, HQ_ESTORE when Redis is down.        */

enum hq_key_state {
    HQ_KEY_IDLE = 0,   /* no jobs; as a filter: any state */
    HQ_KEY_READY = 1,  /* waiting for a worker */
    HQ_KEY_ACTIVE = 2, /* leased by a worker, running its head job */
    HQ_KEY_PARKED = 3, /* waiting until a due time (backoff, rate limit) */
    HQ_KEY_HELD = 4,   /* claimed by no worker until released */
};

/* "idle", "ready", "active", "parked", "held"; "?" for anything else. */
HQ_API const char *hq_key_state_name(int state);
/* The state named `name`, or -1. */
HQ_API int hq_key_state_parse(const char *name);

/* A key as the administration sees it. */
struct hq_key_info {
    char *key;
    int state;          /* enum hq_key_state */
    int64_t depth;      /* jobs queued, the running one included */
    int64_t attempts;   /* failed attempts of the head job */
    int64_t when_ms;    /* active: lease expiry; parked: due time; else -1 */
    char *reason;       /* held: why; active: a pending hold's reason; else "" */
    char *error;        /* last error of the head job, "" when none */
};

enum hq_hold_status {
    HQ_HOLD_DONE = 0,    /* the key is held now */
    HQ_HOLD_ALREADY = 1, /* it was held already; nothing changed */
    HQ_HOLD_PENDING = 2, /* it is active: held as soon as its job settles */
};

/*
 * Hold `key` with `reason` (NULL: "operator"): no worker claims it until
 * hq_client_release(). A ready or parked key is held at once; an active key
 * when its running job settles. A key held with its customer becomes held on
 * its own, so releasing the customer leaves it held. Stores an enum
 * hq_hold_status in `*status` (if non-NULL). HQ_ENOTFOUND: nothing queued.
 */
HQ_API int hq_client_hold(hq_client *c, const char *key, const char *reason,
                          int *status);

enum hq_release_status {
    HQ_RELEASE_DONE = 0,      /* the held key is ready again, at the front */
    HQ_RELEASE_CANCELLED = 1, /* active: its pending hold is cancelled */
};

/*
 * Release a held key: it becomes ready at the front of its customer's keys,
 * its head job unchanged, and idle workers are woken. HQ_ENOTFOUND: nothing
 * queued; HQ_EINVAL: the key is not held.
 */
HQ_API int hq_client_release(hq_client *c, const char *key, int *status);

/*
 * Release a held customer: every key held with it becomes ready, in the
 * order of their head jobs; keys held on their own stay held. Stores the
 * number of keys released in `*released` (if non-NULL). HQ_ENOTFOUND: the
 * customer is not held.
 */
HQ_API int hq_client_release_customer(hq_client *c, const char *customer,
                                      size_t *released);

/*
 * Store the customer's API token. If its keys were held for reason
 * "no-token" or "token-invalid", they resume in order; `*released` (if
 * non-NULL) gets how many. HQ_EINVAL: the token is empty, holds a control
 * character or is longer than 1000 bytes.
 */
HQ_API int hq_client_token_set(hq_client *c, const char *customer,
                               const char *token, size_t *released);
/* Forget the customer's token. HQ_ENOTFOUND: it had none. */
HQ_API int hq_client_token_del(hq_client *c, const char *customer);

/* A dead letter: a job that ran out of attempts, kept with its last error. */
struct hq_dead_letter {
    char *id;               /* the job id, also the dead letter's */
    char *key;
    char *customer;
    int64_t seq;
    int64_t received_at_ms;
    int64_t attempts;
    int64_t at_ms;          /* when it was dead-lettered (Redis TIME) */
    char *error;            /* the last error */
    char *webhook_id;       /* hq_client_dlq_show() only; "" when none */
    char *body;             /* hq_client_dlq_show() only; NUL-terminated too */
    size_t body_len;
    unsigned shard;
};
HQ_API void hq_dead_letter_release(struct hq_dead_letter *d);

struct hq_dead_letters {
    struct hq_dead_letter *items; /* oldest first */
    size_t n;
    size_t total;                 /* in every shard; > n when limited */
};
HQ_API void hq_dead_letters_release(struct hq_dead_letters *l);

/* The dead letters of every shard, oldest first, at most `limit` (0: all). */
HQ_API int hq_client_dlq_list(hq_client *c, size_t limit,
                              struct hq_dead_letters *out);
/* One dead letter with its body. HQ_ENOTFOUND: no dead letter `id`. */
HQ_API int hq_client_dlq_show(hq_client *c, const char *id,
                              struct hq_dead_letter *out);
/*
 * Put dead letter `id` back at the TAIL of its key (same id and seq,
 * attempts reset): it runs after the jobs its key received since.
 * HQ_ENOTFOUND: no dead letter `id`.
 */
HQ_API int hq_client_dlq_retry(hq_client *c, const char *id);
/* Retry every dead letter of every shard, oldest first; `*n` gets how many. */
HQ_API int hq_client_dlq_retry_all(hq_client *c, size_t *n);
/* Delete dead letter `id`. HQ_ENOTFOUND: no dead letter `id`. */
HQ_API int hq_client_dlq_drop(hq_client *c, const char *id);
HQ_API int hq_client_dlq_drop_all(hq_client *c, size_t *n);
/*
 * As JSON (`hookq dlq list --json`, `dlq show ID --json`): a dead letter is
 * {"id", "key", "customer", "seq", "received_at_ms", "attempts", "at_ms",
 * "error", "shard"}, plus "webhook_id" and "body" (null when it is not
 * UTF-8) from hq_client_dlq_show(); a list is {"total", "dead_letters":
 * [...]}. Strings the caller frees with free(), or NULL when out of memory.
 */
HQ_API char *hq_dead_letter_json(const struct hq_dead_letter *d);
HQ_API char *hq_dead_letters_json(const struct hq_dead_letters *l);

/* Gauges of one shard (or of all, summed). */
struct hq_shard_stats {
    int64_t ready_keys;
    int64_t ready_customers;
    int64_t active;         /* keys leased by workers: jobs in flight */
    int64_t parked;
    int64_t held;           /* held keys */
    int64_t held_customers;
    int64_t dead_letters;
    int64_t jobs;           /* jobs queued in every key, in flight included */
    int64_t oldest_age_ms;  /* age of the oldest waiting head job; -1: none
                               (summed: the greatest; see stats.lua) */
};

struct hq_counter {
    char name[32];          /* accepted, done, retried, deadlettered, ... */
    int64_t value;          /* since the namespace was created */
};

/*
 * A target of the circuit breaker (DESIGN §3.4 step 3): an http delivery's
 * "scheme://host:port", "exec:/path", or api.base_url's origin (fetches).
 */
struct hq_target_info {
    char target[600];
    int up;                 /* 1 up, 0 down: its keys wait for a probe */
    int64_t failures;       /* consecutive failures (the one that tripped
                               it, while down) */
    int64_t down_since_ms;  /* Redis TIME it went down; -1 while up */
    int64_t next_probe_ms;  /* while down: no probe before; else -1 */
    int64_t probes;         /* failed probes since it went down */
    char last_error[256];   /* "" when none */
};

struct hq_stats {
    int64_t time_ms;              /* Redis TIME when sampled */
    unsigned nshards;
    struct hq_shard_stats *shards; /* [nshards] */
    struct hq_shard_stats total;
    struct hq_counter *counters;  /* summed over shards, sorted by name */
    size_t ncounters;
    struct hq_key_info *top;      /* the deepest keys, deepest first */
    size_t ntop;
    struct hq_target_info *targets; /* every target a worker tried, by name */
    size_t ntargets;
};

/*
 * Sample every shard: gauges, counters, the `top_n` deepest keys and the
 * circuit breaker's targets. Costs Redis O(1) per shard plus O(top_n log n)
 * for the keys and O(targets). Release with
 * hq_stats_release().
 */
HQ_API int hq_client_stats(hq_client *c, size_t top_n, struct hq_stats *out);
HQ_API void hq_stats_release(struct hq_stats *s);
/* The value of counter `name`, 0 when absent. */
HQ_API int64_t hq_stats_counter(const struct hq_stats *s, const char *name);
/*
 * The stats as the JSON document of `hookq stats --json` and GET /api/stats
 * (see docs/operations.md). With `prev` (an earlier sample, may be NULL) it
 * includes "rates": counters per second between the two. Returns a string
 * the caller frees with free(), or NULL when out of memory.
 */
HQ_API char *hq_stats_json(const struct hq_stats *s, const struct hq_stats *prev);

struct hq_key_list {
    struct hq_key_info *items;    /* deepest first */
    size_t n;
    size_t total;                 /* keys in that state, every shard */
    int truncated;                /* 1: some shard had more than we looked at */
    int64_t time_ms;              /* Redis TIME when listed */
};

/*
 * The `top_n` deepest keys in `state` (HQ_KEY_IDLE: any state but idle),
 * over every shard, deepest first. For one state, at most 10,000 keys per
 * shard are looked at (`truncated` says when that may have missed some).
 * Release with hq_key_list_release().
 */
HQ_API int hq_client_keys(hq_client *c, int state, size_t top_n,
                          struct hq_key_list *out);
HQ_API void hq_key_list_release(struct hq_key_list *l);
/*
 * The list as JSON (`hookq keys --json`): {"time_ms", "total", "truncated",
 * "keys": [...]}, each key as in hq_stats_json()'s "top_keys". Returns a
 * string the caller frees with free(), or NULL when out of memory.
 */
HQ_API char *hq_key_list_json(const struct hq_key_list *l);

struct hq_peek_job {
    char *id;
    int64_t seq;
    int64_t received_at_ms;
    char *webhook_id;       /* "" when none */
    char *body;             /* NUL-terminated too */
    size_t body_len;
};

struct hq_peek {
    struct hq_key_info key; /* state HQ_KEY_IDLE when nothing is queued */
    struct hq_peek_job *jobs; /* the first n, head first */
    size_t n;
};

/*
 * The key's state and its first `n` jobs, head first. An idle key gives
 * HQ_OK with state HQ_KEY_IDLE and no jobs. Release with hq_peek_release().
 */
HQ_API int hq_client_peek(hq_client *c, const char *key, size_t n,
                          struct hq_peek *out);
HQ_API void hq_peek_release(struct hq_peek *p);
/*
 * The key and its jobs as JSON (`hookq peek --json`, GET /api/keys/KEY):
 * {"key", "state", "depth", "attempts", "reason", "error" ("" when none),
 * "lease_expires_ms" or "due_ms" when known, "jobs": [{"id", "seq",
 * "received_at_ms", "webhook_id", "body"}]}, "body" the payload as a string.
 * Text that is not UTF-8 (a key from a header, a body the library queued)
 * shows its other bytes as U+FFFD. Returns a string the caller frees with
 * free(), or NULL when out of memory.
 */
HQ_API char *hq_peek_json(const struct hq_peek *p);

/* ------------------------------------------------------------------------ */
/* What the processes of a namespace record about themselves.               */

/* The most shards a namespace may have (config and store accept the same). */
#define HQ_SHARDS_MAX 1024

/*
 * Record this client's shard count as the namespace's, unless one is
 * recorded already (one atomic SET NX GET). Returns HQ_OK when they agree
 * (or it was just recorded), HQ_ECONFIG when Redis holds another count
 * (hq_client_errmsg() names both), HQ_ESTORE when Redis is down. `*recorded`
 * (if non-NULL) gets the count Redis holds, 0 when unknown. A namespace's
 * keys must never be spread with two different counts: every process that
 * touches the queue checks this first (DESIGN §3.2 shards).
 */
HQ_API int hq_client_check_shards(hq_client *c, unsigned *recorded);

/* A live worker process (hq_worker announces itself every second). */
struct hq_worker_info {
    char *host;
    int64_t pid;
    char *version;
    int64_t started_ms;   /* wall clock of its host when it started */
    int64_t loops;        /* its event loops (worker threads) */
    int64_t in_flight;    /* jobs it holds */
    int64_t last_seen_ms; /* Redis TIME of its last announcement */
};

struct hq_worker_list {
    struct hq_worker_info *items; /* by host, then pid */
    size_t n;
    int64_t time_ms;              /* Redis TIME when listed */
};

/* How long a worker that stopped announcing itself stays listed. */
#define HQ_WORKER_TTL_MS 5000

/*
 * The worker processes seen within the last HQ_WORKER_TTL_MS. Release with
 * hq_worker_list_release().
 */
HQ_API int hq_client_workers(hq_client *c, struct hq_worker_list *out);
HQ_API void hq_worker_list_release(struct hq_worker_list *l);
/*
 * The list as JSON (`hookq workers --json`, GET /api/workers): an array of
 * {"host", "pid", "version", "started", "loops", "in_flight", "last_seen"},
 * times in RFC 3339 UTC with milliseconds. Returns a string the caller
 * frees with free(), or NULL when out of memory.
 */
HQ_API char *hq_worker_list_json(const struct hq_worker_list *l);

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

enum hq_log_level {
    HQ_LOG_ERROR = 0,
    HQ_LOG_WARN = 1,
    HQ_LOG_INFO = 2,
    HQ_LOG_DEBUG = 3,
};

/*
 * Log sink of the worker: one message, lower case, no newline, valid only
 * during the call. Called on any loop thread, so it must be thread-safe.
 */
typedef void hq_log_fn(int level, const char *msg, void *arg);

/*
 * The same with its fields apart: `msg` says what happened without the
 * values ("job will retry"), `fields` is a NULL-terminated array of name,
 * value pairs ("key", "acme:post-create", "job", "0-17", "attempt", "2",
 * ...), all valid only during the call. Values are as they came: a key or
 * customer may hold any bytes, and the sink escapes them.
 */
typedef void hq_log_kv_fn(int level, const char *msg, const char *const *fields,
                          void *arg);

/* How Redis answered a settlement (argument of hq_settled_fn). */
enum hq_settled {
    HQ_SETTLED_DONE = 0,
    HQ_SETTLED_RETRY = 1,   /* parked for a backoff, attempt counted */
    HQ_SETTLED_PARK = 2,
    HQ_SETTLED_DEAD = 3,    /* dead-lettered */
    HQ_SETTLED_HOLD = 4,
    HQ_SETTLED_RELEASE = 5, /* lease handed back (drain) */
    HQ_SETTLED_STALE = 6,   /* rejected: the lease was no longer ours */
    HQ_SETTLED_LOST = 7,    /* the worker stopped before Redis answered (or
                               before the job settled): the lease expires
                               and the job runs again elsewhere */
};

/*
 * Called on the job's loop thread when Redis has answered the job's
 * settlement: `outcome` is an enum hq_settled, `latency_us` the time from the
 * claim's answer to this one. The job's accessors are valid during the call.
 */
typedef void hq_settled_fn(const hq_job *job, int outcome, int64_t latency_us,
                           void *arg);

/*
 * The failure policy (enum hq_failure_policy) of a job, asked once when it is
 * claimed, before the handler runs; the handler may still change it with
 * hq_job_set_policy(). Without it, every job gets options.on_failure.
 */
typedef int hq_policy_fn(const hq_job *job, void *arg);

struct hq_worker_options {
    struct hq_store_options store;
    unsigned concurrency;     /* keys in flight per process, 64 when 0 */
    unsigned threads;         /* event loops, 2 when 0 */
    int64_t lease_ms;         /* 30000 when 0 */
    int max_attempts;         /* 12 when 0 */
    int64_t backoff_min_ms;   /* 5000 when 0 */
    int64_t backoff_max_ms;   /* 3600000 when 0 */
    int on_failure;           /* enum hq_failure_policy */
    int64_t shutdown_timeout_ms; /* 30000 when 0 */
    hq_handler_fn *handler;   /* required */
    void *handler_arg;
    hq_log_fn *log;           /* optional; the library never writes to stderr */
    void *log_arg;
    hq_settled_fn *on_settled; /* optional */
    void *settled_arg;
    hq_policy_fn *policy;     /* optional */
    void *policy_arg;
    /*
     * Optional per-loop hooks, for handlers that keep resources on a loop
     * (an HTTP client, a Redis connection): loop_init runs on each loop
     * thread once its event base exists, before any handler runs there, and
     * returns the loop's state, which hq_job_loop_state() gives the handler
     * for each job of that loop; loop_fini gets it back on that thread
     * after the loop's last handler call and before its event base is
     * freed. `base` is a struct event_base *.
     */
    void *(*loop_init)(void *base, void *arg);
    void (*loop_fini)(void *base, void *loop_state, void *arg);
    void *loop_arg;
    hq_log_kv_fn *log_kv;     /* optional; used instead of `log` when set,
                                 with log_arg */
};

/* Counters of a worker since hq_worker_new(), summed over its loops. */
struct hq_worker_stats {
    uint64_t claimed;     /* jobs leased (handler run, or policy applied) */
    uint64_t done;        /* completions Redis accepted */
    uint64_t retried;     /* retries Redis accepted */
    uint64_t parked;
    uint64_t dead;        /* dead-lettered */
    uint64_t held;
    uint64_t released;    /* leases handed back on drain */
    uint64_t stale;       /* settlements or renewals rejected by the token */
    uint64_t renewed;     /* lease renewals Redis accepted */
    uint64_t round_trips; /* settle calls answered */
    uint64_t redis_errors; /* failed calls and lost connections */
    int64_t in_flight;    /* jobs leased and not yet settled by the handler */
};

/* A snapshot of the counters. Safe to call from any thread, at any time. */
HQ_API void hq_worker_stats(const hq_worker *w, struct hq_worker_stats *st);

/* Allocate a worker; nothing runs until hq_worker_start(). */
HQ_API int hq_worker_new(const struct hq_worker_options *opts, hq_worker **out);
/*
 * Start the loop threads. Returns HQ_OK, HQ_ESTORE when Redis is down, or
 * HQ_ECONFIG when the namespace was created with another shard count
 * (hq_client_check_shards(); hq_worker_errmsg() names both). A started
 * worker announces itself every second (hq_client_workers()).
 */
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
/* What loop_init returned on the job's loop (NULL without loop_init). */
HQ_API void *hq_job_loop_state(const hq_job *job);
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
