/*
 * The admin listener ([admin] listen; opened by run, serve and work; none
 * when "off"): one libevent thread serving evhttp. GET /healthz: 200
 * {"status":"ok"} when Redis answers PING and takes writes; 503 {"status":
 * "unavailable","detail":...} when it does not answer; {"status":
 * "redis_oom","detail":...} when it is over its maxmemory, with 503 in a
 * process that runs an intake (it refuses every webhook) and 200 in one
 * that only works (it drains, which frees memory); the metrics, the JSON API and the dashboard
 * are admin_api.h's routes, which hk_admin_new() adds.
 *
 * With [admin] token set, every request must carry "Authorization: Bearer
 * <token>" (compared in constant time), else 401; routes added with
 * hk_admin_route_public() (the dashboard's page) are the exception. A body
 * over 64 KiB is 413 {"error":"body_too_large"} on every route.
 *
 * Usage:
 *     a = hk_admin_new(cfg, &store, err, sizeof(err));   (binds the port)
 *     hk_admin_attach(a, intake, worker, process);     (optional)
 *     hk_admin_route(a, "/metrics", metrics_cb, arg);   (optional)
 *     hk_admin_start(a);
 *     ...
 *     hk_admin_free(a);                                 (stops and joins)
 */
#ifndef HQ_ADMIN_HTTP_H
#define HQ_ADMIN_HTTP_H

#include <stddef.h>

#include "hookq/hookq.h"
#include "config_int.h"

struct event_base;
struct evhttp_request;
struct json_t;
struct hk_admin;
struct hk_intake;
struct hq__process;

/*
 * A route handler: runs on the admin thread, answers `req` (evhttp_send_reply)
 * before returning. Auth has been checked already.
 */
typedef void hk_admin_route_fn(struct hk_admin *a, struct evhttp_request *req,
                               void *arg);

/*
 * Bind cfg->admin.listen (its text must not be NULL). `cfg` is borrowed and
 * must outlive the admin; `store` is copied (strings too), and `addr`, the
 * same Redis parsed. Returns NULL with the reason in `err` (port in use).
 */
struct hk_admin *hk_admin_new(const struct hq__config *cfg,
                              const struct hq_store_options *store,
                              const struct hq__store_addr *addr, char *err,
                              size_t errsize);

/*
 * The intake, worker and its handler this process runs (any may be NULL),
 * for routes. Before hk_admin_start().
 */
void hk_admin_attach(struct hk_admin *a, struct hk_intake *intake,
                     hq_worker *worker, struct hq__process *process);
struct hk_intake *hk_admin_intake(const struct hk_admin *a);
hq_worker *hk_admin_worker(const struct hk_admin *a);
struct hq__process *hk_admin_process(const struct hk_admin *a);
const struct hq__config *hk_admin_config(const struct hk_admin *a);

/* Serve `path` (exact match) with `fn`. Before hk_admin_start() only. */
int hk_admin_route(struct hk_admin *a, const char *path, hk_admin_route_fn *fn,
                   void *arg);
/* The same, served without the token: for pages that carry no data. */
int hk_admin_route_public(struct hk_admin *a, const char *path,
                          hk_admin_route_fn *fn, void *arg);
/*
 * Serve every path that starts with `prefix` and is longer ("/api/keys/"
 * serves "/api/keys/acme:x"); exact routes win. The handler reads the rest
 * of the path from the request. Before hk_admin_start() only.
 */
int hk_admin_route_prefix(struct hk_admin *a, const char *prefix,
                          hk_admin_route_fn *fn, void *arg);

/* A task run on the admin thread, between requests. */
typedef void hk_admin_tick_fn(struct hk_admin *a, void *arg);
/*
 * Run `fn` on the admin thread as soon as it starts, then every `ms`
 * (measured from the end of the previous run). Before hk_admin_start()
 * only; at most 4. Returns 0 or -1.
 */
int hk_admin_every(struct hk_admin *a, int ms, hk_admin_tick_fn *fn, void *arg);

/* The admin thread's event loop, for timers of routes that answer later. */
struct event_base *hk_admin_base(const struct hk_admin *a);

/* Start the admin thread. Returns 0, or -1 when the thread cannot start. */
int hk_admin_start(struct hk_admin *a);

/* The TCP port bound (useful with listen = 127.0.0.1:0). */
int hk_admin_port(const struct hk_admin *a);

/* Stop the thread (if started), close the listener, free. NULL is accepted. */
void hk_admin_free(struct hk_admin *a);

/*
 * What Redis says to this process: HQ_ADMIN_REDIS_UP (answers PING, takes
 * writes), HQ_ADMIN_REDIS_DOWN (no answer to PING) or HQ_ADMIN_REDIS_OOM
 * (answers, but refuses writes: over its maxmemory), with the reason in
 * `why` when not up. On the admin thread only (it uses /healthz's
 * connection): in route handlers.
 */
enum { HQ_ADMIN_REDIS_DOWN = 0, HQ_ADMIN_REDIS_UP = 1, HQ_ADMIN_REDIS_OOM = 2 };
int hk_admin_redis_state(struct hk_admin *a, char *why, size_t size);

/*
 * A Redis client for a route set: `store` with its timeout capped at
 * `max_timeout_ms`. One whose connect failed is kept (it connects again
 * when used). Returns 0, or -1 with "admin: <why>" in `err` (bad URL, out of
 * memory) and *out NULL.
 */
int hk_admin_client_new(const struct hq_store_options *store,
                        int max_timeout_ms, hq_client **out, char *err,
                        size_t errsize);

/* Why a request body was refused: the answer a route sends (its own way). */
struct hk_admin_refusal {
    int code;           /* 415 or 400 */
    const char *name;   /* the "error" member */
    char detail[300];   /* the "detail" member */
};

/*
 * The JSON object body of `req` (new reference), whose Content-Type must be
 * application/json (a browser cannot send that to another origin without a
 * CORS preflight, which this server never grants). With `allowed` (a
 * NULL-terminated list of member names) any other member is refused too.
 * Returns NULL with what to answer in `why` otherwise; sends nothing.
 */
struct json_t *hk_admin_json_object(struct evhttp_request *req,
                                    const char *const *allowed,
                                    struct hk_admin_refusal *why);

#endif /* HQ_ADMIN_HTTP_H */
