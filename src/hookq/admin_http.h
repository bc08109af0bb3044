/*
 * The admin listener ([admin] listen; opened by run, serve and work; none
 * when "off"): one libevent thread serving evhttp. GET /healthz: 200
 * {"status":"ok"} when Redis answers PING and takes writes; 503 {"status":
 * "unavailable","detail":...} when it does not answer; {"status":
 * "redis_oom","detail":...} when it is over its maxmemory, with 503 in a
 * process that runs an intake (it refuses every webhook) and 200 in one
 * that only works (it drains, which frees memory); the metrics, the JSON API and the dashboard
 * are admin_api.h's routes, which hq_admin_new() adds.
 *
 * With [admin] token set, every request must carry "Authorization: Bearer
 * <token>" (compared in constant time), else 401; routes added with
 * hq_admin_route_public() (the dashboard's page) are the exception. A body
 * over 64 KiB is 413 {"error":"body_too_large"} on every route.
 *
 * Usage:
 *     a = hq_admin_new(cfg, &store, err, sizeof(err));   (binds the port)
 *     hq_admin_attach(a, intake, worker, process);     (optional)
 *     hq_admin_route(a, "/metrics", metrics_cb, arg);   (optional)
 *     hq_admin_start(a);
 *     ...
 *     hq_admin_free(a);                                 (stops and joins)
 */
#ifndef HQ_ADMIN_HTTP_H
#define HQ_ADMIN_HTTP_H

#include <stddef.h>

#include "hookq/hookq.h"
#include "config_int.h"

struct event_base;
struct evhttp_request;
struct json_t;
struct hq_admin;
struct hq_intake;
struct hq_process;

/*
 * A route handler: runs on the admin thread, answers `req` (evhttp_send_reply)
 * before returning. Auth has been checked already.
 */
typedef void hq_admin_route_fn(struct hq_admin *a, struct evhttp_request *req,
                               void *arg);

/*
 * Bind cfg->admin.listen (cfg->admin.listen must not be NULL). `cfg` is
 * borrowed and must outlive the admin; `store` is copied (strings too).
 * Returns NULL with the reason in `err` (bad address, port in use).
 */
struct hq_admin *hq_admin_new(const struct hq_config *cfg,
                              const struct hq_store_options *store, char *err,
                              size_t errsize);

/*
 * The intake, worker and its handler this process runs (any may be NULL),
 * for routes. Before hq_admin_start().
 */
void hq_admin_attach(struct hq_admin *a, struct hq_intake *intake,
                     hq_worker *worker, struct hq_process *process);
struct hq_intake *hq_admin_intake(const struct hq_admin *a);
hq_worker *hq_admin_worker(const struct hq_admin *a);
struct hq_process *hq_admin_process(const struct hq_admin *a);
const struct hq_config *hq_admin_config(const struct hq_admin *a);

/* Serve `path` (exact match) with `fn`. Before hq_admin_start() only. */
int hq_admin_route(struct hq_admin *a, const char *path, hq_admin_route_fn *fn,
                   void *arg);
/* The same, served without the token: for pages that carry no data. */
int hq_admin_route_public(struct hq_admin *a, const char *path,
                          hq_admin_route_fn *fn, void *arg);
/*
 * Serve every path that starts with `prefix` and is longer ("/api/keys/"
 * serves "/api/keys/acme:x"); exact routes win. The handler reads the rest
 * of the path from the request. Before hq_admin_start() only.
 */
int hq_admin_route_prefix(struct hq_admin *a, const char *prefix,
                          hq_admin_route_fn *fn, void *arg);

/* A task run on the admin thread, between requests. */
typedef void hq_admin_tick_fn(struct hq_admin *a, void *arg);
/*
 * Run `fn` on the admin thread as soon as it starts, then every `ms`
 * (measured from the end of the previous run). Before hq_admin_start()
 * only; at most 4. Returns 0 or -1.
 */
int hq_admin_every(struct hq_admin *a, int ms, hq_admin_tick_fn *fn, void *arg);

/* The admin thread's event loop, for timers of routes that answer later. */
struct event_base *hq_admin_base(const struct hq_admin *a);

/* Start the admin thread. Returns 0, or -1 when the thread cannot start. */
int hq_admin_start(struct hq_admin *a);

/* The TCP port bound (useful with listen = 127.0.0.1:0). */
int hq_admin_port(const struct hq_admin *a);

/* Stop the thread (if started), close the listener, free. NULL is accepted. */
void hq_admin_free(struct hq_admin *a);

/*
 * What Redis says to this process: HQ_ADMIN_REDIS_UP (answers PING, takes
 * writes), HQ_ADMIN_REDIS_DOWN (no answer to PING) or HQ_ADMIN_REDIS_OOM
 * (answers, but refuses writes: over its maxmemory), with the reason in
 * `why` when not up. On the admin thread only (it uses /healthz's
 * connection): in route handlers.
 */
enum { HQ_ADMIN_REDIS_DOWN = 0, HQ_ADMIN_REDIS_UP = 1, HQ_ADMIN_REDIS_OOM = 2 };
int hq_admin_redis_state(struct hq_admin *a, char *why, size_t size);

/*
 * A Redis client for a route set: `store` with its timeout capped at
 * `max_timeout_ms`. One whose connect failed is kept (it connects again
 * when used). Returns 0, or -1 with "admin: <why>" in `err` (bad URL, out of
 * memory) and *out NULL.
 */
int hq_admin_client_new(const struct hq_store_options *store,
                        int max_timeout_ms, hq_client **out, char *err,
                        size_t errsize);

/* Why a request body was refused: the answer a route sends (its own way). */
struct hq_admin_refusal {
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
struct json_t *hq_admin_json_object(struct evhttp_request *req,
                                    const char *const *allowed,
                                    struct hq_admin_refusal *why);

#endif /* HQ_ADMIN_HTTP_H */
