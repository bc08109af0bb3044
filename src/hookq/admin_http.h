/*
 * The admin listener ([admin] listen; opened by run, serve and work; none
 * when "off"): a small HTTP server on one libevent thread that serves the
 * routes other files register on it. It knows none of them: /healthz,
 * /metrics, the JSON API under /api/ and the dashboard are admin_api.h's,
 * /api/tokens/ and /api/limit admin_app.h's, each attached by whoever runs
 * the daemon (cmd_run.c).
 *
 * What it does for every route: with [admin] token set, a request must
 * carry "Authorization: Bearer <token>" (compared in constant time), else
 * 401 {"error":"unauthorized"}; routes added with hk_admin_route_public()
 * (the dashboard's page) are the exception. A body over 64 KiB is 413
 * {"error":"body_too_large"}, a path no route serves 404 {"error":
 * "not_found"}, and a method the route does not take 405 {"error":
 * "method_not_allowed","detail":"<Allow>"} with an Allow header. Those
 * checks run in that order; the handler then sees only requests it takes.
 *
 * Usage:
 *     a = hk_admin_new(cfg, err, sizeof(err));                (binds the port)
 *     hk_admin_route(a, "/x", HK_ADMIN_GET, x_cb, arg);        (and the like)
 *     hk_admin_start(a);
 *     ...
 *     hk_admin_free(a);                        (stops and joins, then cleans up)
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

/* The methods a route takes (a mask). */
enum hk_admin_methods {
    HK_ADMIN_GET = 1 << 0, /* GET and HEAD */
    HK_ADMIN_POST = 1 << 1,
    HK_ADMIN_PUT = 1 << 2,
    HK_ADMIN_DELETE = 1 << 3,
    HK_ADMIN_ANY = (1 << 4) - 1,
};

/*
 * A route handler: runs on the admin thread, answers `req`
 * (evhttp_send_reply) before returning, or later from a timer of
 * hk_admin_base(). The token, the body's size and the method have been
 * checked already.
 */
typedef void hk_admin_route_fn(struct hk_admin *a, struct evhttp_request *req,
                               void *arg);

/*
 * Bind cfg->admin.listen (its text must not be NULL: not off); requests
 * will need cfg->admin.token when it is set. `cfg` is borrowed and must
 * outlive the admin. Returns NULL with the reason in `err` (port in use).
 */
struct hk_admin *hk_admin_new(const struct hq__config *cfg, char *err,
                              size_t errsize);

/*
 * Serve `path` (exact match) with `fn` for the `methods` (enum
 * hk_admin_methods). Before hk_admin_start() only. Returns 0, or -1 (out
 * of memory, too many routes).
 */
int hk_admin_route(struct hk_admin *a, const char *path, unsigned methods,
                   hk_admin_route_fn *fn, void *arg);
/* The same, served without the token: for pages that carry no data. */
int hk_admin_route_public(struct hk_admin *a, const char *path,
                          unsigned methods, hk_admin_route_fn *fn, void *arg);
/*
 * Serve every path that starts with `prefix` and is longer ("/api/keys/"
 * serves "/api/keys/acme:x"); exact routes win. The handler reads the rest
 * of the path from the request. Before hk_admin_start() only.
 */
int hk_admin_route_prefix(struct hk_admin *a, const char *prefix,
                          unsigned methods, hk_admin_route_fn *fn, void *arg);

/* A task run on the admin thread, between requests. */
typedef void hk_admin_tick_fn(struct hk_admin *a, void *arg);
/*
 * Run `fn` on the admin thread as soon as it starts, then every `ms`
 * (measured from the end of the previous run). Before hk_admin_start()
 * only; at most 4. Returns 0 or -1.
 */
int hk_admin_every(struct hk_admin *a, int ms, hk_admin_tick_fn *fn, void *arg);

/*
 * Call `fn(arg)` from hk_admin_free(): after the admin thread has stopped
 * and its connections are closed, before its event loop is freed (so a
 * route set frees its pending requests and timers there). In reverse
 * order of registration. Before hk_admin_start() only. Returns 0 or -1.
 */
int hk_admin_on_free(struct hk_admin *a, void (*fn)(void *arg), void *arg);

/* The admin thread's event loop, for timers of routes that answer later. */
struct event_base *hk_admin_base(const struct hk_admin *a);

/* Start the admin thread. Returns 0, or -1 when the thread cannot start. */
int hk_admin_start(struct hk_admin *a);

/* The TCP port bound (useful with listen = 127.0.0.1:0). */
int hk_admin_port(const struct hk_admin *a);

/*
 * Stop the thread (if started), close the listener, run the hk_admin_on_free()
 * functions, free. NULL is accepted.
 */
void hk_admin_free(struct hk_admin *a);

/* ------------------------------------------------------------------------ */
/* For route handlers: the answers every route set gives alike.             */

/*
 * Answer `code` with `body` (`len` bytes) of Content-Type `type`, with
 * Cache-Control: no-store and X-Content-Type-Options: nosniff. A 500
 * without a body when out of memory.
 */
void hk_admin_reply(struct evhttp_request *req, int code, const char *type,
                    const char *body, size_t len);
/* The same for a JSON body; takes `body` (NULL: out of memory, a 500). */
void hk_admin_reply_json(struct evhttp_request *req, int code, char *body);
/* {"error": name, "detail": detail}, as the intake's errors. */
void hk_admin_reply_error(struct evhttp_request *req, int code,
                          const char *name, const char *detail);

/*
 * The JSON object body of `req` (new reference), whose Content-Type must be
 * application/json (a browser cannot send that to another origin without a
 * CORS preflight, which this server never grants). With `allowed` (a
 * NULL-terminated list of member names) any other member is refused too.
 * Otherwise answers 415 or 400 {"error", "detail"} naming what is wrong
 * and returns NULL.
 */
struct json_t *hk_admin_json_body(struct evhttp_request *req,
                                  const char *const *allowed);

/*
 * A Redis client for a route set: `store` with its timeout capped at
 * `max_timeout_ms`. One whose connect failed is kept (it connects again
 * when used). Returns 0, or -1 with "admin: <why>" in `err` (bad URL, out of
 * memory) and *out NULL.
 */
int hk_admin_client_new(const struct hq_store_options *store,
                        int max_timeout_ms, hq_client **out, char *err,
                        size_t errsize);

#endif /* HQ_ADMIN_HTTP_H */
