/*
 * The admin listener (see admin_http.h). One thread runs an event_base with
 * evhttp; requests are served one at a time, which is plenty for health
 * checks, scrapes and an operator's dashboard.
 *
 * The other routes are admin_api.c's and admin_app.c's, added by
 * hk_admin_new(). What both need alike is here too: their Redis client
 * (hk_admin_client_new) and the reading of a JSON object body
 * (hk_admin_json_object), which says why it refused and leaves the answer
 * to the route, each set answering with its own headers.
 *
 * /healthz keeps one synchronous Redis connection (the store's connect, so
 * URLs, AUTH and SELECT behave as everywhere else) and sends PING with a
 * 1 s timeout; a failed PING drops the connection, and the next request
 * connects again, so recovery needs no restart.
 *
 * A Redis over its maxmemory (noeviction) answers PING but refuses every
 * enqueue. To tell, /healthz also runs OOM_PROBE: a script that writes
 * nothing but, having no flags after its shebang, counts as one that may
 * write, which Redis 7 refuses before running it exactly when it refuses
 * writes for memory ("OOM command not allowed ..."). /metrics reads the same
 * state (hookq_redis_oom).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <jansson.h>

#include "admin_api.h"
#include "admin_app.h"
#include "admin_http.h"
#include "intake.h"
#include "log.h"
#include "conn_int.h"

#include "banned_int.h"

#define MAX_ROUTES 32
#define MAX_TICKS 4
#define PING_TIMEOUT_MS 1000
#define BODY_MAX (64 * 1024)
/* evhttp answers a body over its own limit with an HTML page: it is set
 * well above BODY_MAX, so that ours gets the JSON 413 for any body up to
 * this. */
#define BODY_MAX_EVHTTP (2 * 1024 * 1024)
#define OOM_PROBE "#!lua\nreturn 1"

struct route {
    char *path;
    hk_admin_route_fn *fn;
    void *arg;
    int public;          /* served without the token */
    int prefix;          /* serves every longer path that starts with `path` */
};

/* A periodic task of hk_admin_every(). */
struct tick {
    struct hk_admin *a;
    struct event *ev;
    struct timeval every;
    hk_admin_tick_fn *fn;
    void *arg;
};

struct hk_admin {
    const struct hq__config *cfg;
    struct hq__store_addr addr;
    struct hq__sconn redis; /* /healthz connection; made when needed */
    struct hq__store_ns ns;  /* the shards /healthz checks on a cluster */

    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    int port;
    pthread_t thread;
    int started;

    struct route routes[MAX_ROUTES];
    size_t nroutes;
    struct tick ticks[MAX_TICKS];
    size_t nticks;

    struct hk_admin_api *api;
    struct hk_admin_app *app;

    struct hk_intake *intake;
    hq_worker *worker;
    struct hq__process *process;
};

static void
send_json(struct evhttp_request *req, int code, const char *reason,
          const char *body)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control",
                      "no-store");
    evbuffer_add_printf(b, "%s\n", body);
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

/* Constant-time comparison of the bearer token. */
static int
token_ok(const char *want, const char *header)
{
    size_t wl, hl;
    unsigned char diff;

    if (header == NULL || strncmp(header, "Bearer ", 7) != 0)
        return 0;
    header += 7;
    wl = strlen(want);
    hl = strlen(header);
    diff = (unsigned char)(wl != hl);
    for (size_t i = 0; i < wl; i++)
        diff |= (unsigned char)(want[i] ^ (i < hl ? header[i] : 0));
    return diff == 0;
}

/* HQ_ADMIN_REDIS_UP when Redis answered PING and takes writes; else
 * HQ_ADMIN_REDIS_DOWN or HQ_ADMIN_REDIS_OOM with the reason in `why`. */
int
hk_admin_redis_state(struct hk_admin *a, char *why, size_t size)
{
    struct hq__err e;
    redisContext *rc;
    redisReply *r;
    int ok;

    if (a->addr.cluster) {
        /* A Redis Cluster: the master of every shard must answer. */
        if (!hq__sconn_ping(&a->redis, why, size))
            return HQ_ADMIN_REDIS_DOWN;
        goto intake_oom;
    }
    rc = hq__sconn_for_shard(&a->redis, 0, &e);
    if (rc == NULL) {
        snprintf(why, size, "%s", e.msg);
        return 0;
    }
    r = redisCommand(rc, "PING");
    ok = r != NULL && r->type == REDIS_REPLY_STATUS &&
         strcmp(r->str, "PONG") == 0;
    if (!ok)
        snprintf(why, size, "%s",
                 r == NULL                      ? rc->errstr
                 : r->type == REDIS_REPLY_ERROR ? r->str
                                                : "unexpected reply");
    if (r != NULL)
        freeReplyObject(r);
    if (!ok) {
        hq__sconn_release(&a->redis);
        return HQ_ADMIN_REDIS_DOWN;
    }
    r = redisCommand(rc, "EVAL %s 0", OOM_PROBE);
    if (r != NULL && r->type == REDIS_REPLY_ERROR &&
        strncmp(r->str, "OOM ", 4) == 0) {
        snprintf(why, size, "%s", r->str);
        freeReplyObject(r);
        return HQ_ADMIN_REDIS_OOM;
    }
    /* Any other answer (a Redis before 7 runs the shebang as a comment) is
     * not a refusal for memory; a lost connection shows at the next PING. */
    if (r != NULL)
        freeReplyObject(r);
    /* Near the limit, a small probe may pass while a batch of webhooks
     * (whose bytes Redis counts while it reads them) is refused: the
     * intake's last answer from Redis says so. */
intake_oom:
    if (a->intake != NULL) {
        struct hk_intake_stats st;

        hk_intake_stats(a->intake, &st);
        if (st.redis_oom) {
            snprintf(why, size, "the intake's last enqueue was refused: "
                                "OOM command not allowed when used memory > 'maxmemory'");
            return HQ_ADMIN_REDIS_OOM;
        }
    }
    return HQ_ADMIN_REDIS_UP;
}

static void
healthz(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    char why[300], body[700];

    int state;

    (void)arg;
    state = hk_admin_redis_state(a, why, sizeof(why));
    if (state == HQ_ADMIN_REDIS_UP) {
        send_json(req, 200, "OK", "{\"status\":\"ok\"}");
        return;
    }
    /* The reason names the address, never the password (store's messages). */
    {
        size_t n = 0;
        n += (size_t)snprintf(body, sizeof(body),
                              "{\"status\":\"%s\",\"detail\":\"",
                              state == HQ_ADMIN_REDIS_OOM ? "redis_oom"
                                                          : "unavailable");
        for (const char *p = why; *p && n + 8 < sizeof(body); p++) {
            if (*p == '"' || *p == '\\')
                body[n++] = '\\';
            body[n++] = (unsigned char)*p < 0x20 ? ' ' : *p;
        }
        snprintf(body + n, sizeof(body) - n, "\"}");
    }
    /* Out of memory: an intake refuses every webhook (503), so it is not
     * healthy; a worker still drains, which is what frees the memory, so a
     * process without an intake says so but answers 200. */
    if (state == HQ_ADMIN_REDIS_OOM && a->intake == NULL)
        send_json(req, 200, "OK", body);
    else
        send_json(req, 503, "Service Unavailable", body);
}

static void
dispatch(struct evhttp_request *req, void *arg)
{
    struct hk_admin *a = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const struct route *rt = NULL;

    if (path == NULL || path[0] == '\0')
        path = "/";
    /* An exact route wins over a prefix route ("/api/dlq/retry" over "/api/dlq/"). */
    for (size_t i = 0; i < a->nroutes && rt == NULL; i++)
        if (!a->routes[i].prefix && strcmp(a->routes[i].path, path) == 0)
            rt = &a->routes[i];
    for (size_t i = 0; i < a->nroutes && rt == NULL; i++) {
        size_t n = strlen(a->routes[i].path);

        if (a->routes[i].prefix && strncmp(a->routes[i].path, path, n) == 0 &&
            path[n] != '\0')
            rt = &a->routes[i];
    }
    if (a->cfg->admin.token != NULL && !(rt != NULL && rt->public) &&
        !token_ok(a->cfg->admin.token,
                  evhttp_find_header(evhttp_request_get_input_headers(req),
                                     "Authorization"))) {
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "WWW-Authenticate", "Bearer");
        send_json(req, 401, "Unauthorized", "{\"error\":\"unauthorized\"}");
        return;
    }
    if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > BODY_MAX)
        send_json(req, 413, "Payload Too Large",
                  "{\"error\":\"body_too_large\","
                  "\"detail\":\"the body is over 64 KiB\"}");
    else if (rt != NULL)
        rt->fn(a, req, rt->arg);
    else
        send_json(req, 404, "Not Found", "{\"error\":\"not_found\"}");
}

static int
add_route(struct hk_admin *a, const char *path, hk_admin_route_fn *fn,
          void *arg, int public, int prefix)
{
    if (a->started || a->nroutes >= MAX_ROUTES)
        return -1;
    a->routes[a->nroutes].path = strdup(path);
    if (a->routes[a->nroutes].path == NULL)
        return -1;
    a->routes[a->nroutes].fn = fn;
    a->routes[a->nroutes].arg = arg;
    a->routes[a->nroutes].public = public;
    a->routes[a->nroutes].prefix = prefix;
    a->nroutes++;
    return 0;
}

int
hk_admin_route(struct hk_admin *a, const char *path, hk_admin_route_fn *fn,
               void *arg)
{
    return add_route(a, path, fn, arg, 0, 0);
}

int
hk_admin_route_prefix(struct hk_admin *a, const char *prefix,
                      hk_admin_route_fn *fn, void *arg)
{
    return add_route(a, prefix, fn, arg, 0, 1);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tick *t = arg;

    (void)fd;
    (void)what;
    t->fn(t->a, t->arg);
    event_add(t->ev, &t->every);
}

int
hk_admin_every(struct hk_admin *a, int ms, hk_admin_tick_fn *fn, void *arg)
{
    struct tick *t;
    struct timeval now = {0, 0};

    if (a->started || a->nticks >= MAX_TICKS || ms <= 0)
        return -1;
    t = &a->ticks[a->nticks];
    t->a = a;
    t->fn = fn;
    t->arg = arg;
    t->every.tv_sec = ms / 1000;
    t->every.tv_usec = (ms % 1000) * 1000;
    t->ev = evtimer_new(a->base, tick_cb, t);
    if (t->ev == NULL || evtimer_add(t->ev, &now) != 0) {
        if (t->ev != NULL)
            event_free(t->ev);
        t->ev = NULL;
        return -1;
    }
    a->nticks++;
    return 0;
}

int
hk_admin_route_public(struct hk_admin *a, const char *path,
                      hk_admin_route_fn *fn, void *arg)
{
    return add_route(a, path, fn, arg, 1, 0);
}

struct hk_admin *
hk_admin_new(const struct hq__config *cfg, const struct hq_store_options *store,
             const struct hq__store_addr *addr, char *err, size_t errsize)
{
    struct hk_admin *a;
    struct hq__err e;

    evthread_use_pthreads();
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    a->cfg = cfg;
    a->addr = *addr;
    a->addr.timeout_ms = PING_TIMEOUT_MS;
    hq__conn_probe_cluster(&a->addr);
    if (hq__store_ns_init(&a->ns, store->ns ? store->ns : cfg->redis.ns,
                          store->shards ? store->shards : cfg->redis.shards, &e) != HQ_OK)
        hq__store_ns_init(&a->ns, NULL, 1, &e);
    hq__sconn_init(&a->redis, &a->addr, &a->ns);
    a->base = event_base_new();
    a->http = a->base ? evhttp_new(a->base) : NULL;
    if (a->http == NULL) {
        snprintf(err, errsize, "cannot create the admin event loop");
        goto fail;
    }
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE);
    evhttp_set_max_headers_size(a->http, 16384);
    evhttp_set_max_body_size(a->http, BODY_MAX_EVHTTP);
    evhttp_set_timeout(a->http, 30);
    evhttp_set_gencb(a->http, dispatch, a);
    a->bound = evhttp_bind_socket_with_handle(a->http, cfg->admin.listen.host,
                                             (ev_uint16_t)cfg->admin.listen.port);
    if (a->bound == NULL) {
        snprintf(err, errsize, "cannot listen on %s (admin): %s",
                 cfg->admin.listen.text, strerror(errno));
        goto fail;
    }
    {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        evutil_socket_t fd = evhttp_bound_socket_get_fd(a->bound);
        a->port = cfg->admin.listen.port;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_INET)
                a->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            else if (ss.ss_family == AF_INET6)
                a->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    if (hk_admin_route(a, "/healthz", healthz, NULL) != 0) {
        snprintf(err, errsize, "out of memory");
        goto fail;
    }
    a->api = hk_admin_api_new(a, store, err, errsize);
    if (a->api == NULL)
        goto fail;
    a->app = hk_admin_app_new(a, store, err, errsize);
    if (a->app == NULL)
        goto fail;
    return a;
fail:
    hk_admin_free(a);
    return NULL;
}

static void *
admin_thread(void *arg)
{
    struct hk_admin *a = arg;
    event_base_dispatch(a->base);
    return NULL;
}

int
hk_admin_start(struct hk_admin *a)
{
    if (pthread_create(&a->thread, NULL, admin_thread, a) != 0)
        return -1;
    a->started = 1;
    return 0;
}

struct event_base *
hk_admin_base(const struct hk_admin *a)
{
    return a->base;
}

int
hk_admin_port(const struct hk_admin *a)
{
    return a->port;
}

void
hk_admin_attach(struct hk_admin *a, struct hk_intake *intake, hq_worker *worker,
                struct hq__process *process)
{
    a->intake = intake;
    a->worker = worker;
    a->process = process;
}

struct hk_intake *
hk_admin_intake(const struct hk_admin *a)
{
    return a->intake;
}

hq_worker *
hk_admin_worker(const struct hk_admin *a)
{
    return a->worker;
}

struct hq__process *
hk_admin_process(const struct hk_admin *a)
{
    return a->process;
}

const struct hq__config *
hk_admin_config(const struct hk_admin *a)
{
    return a->cfg;
}

void
hk_admin_free(struct hk_admin *a)
{
    if (a == NULL)
        return;
    if (a->started) {
        event_base_loopbreak(a->base);
        pthread_join(a->thread, NULL);
    }
    for (size_t i = 0; i < a->nticks; i++)
        event_free(a->ticks[i].ev);
    if (a->http != NULL)
        evhttp_free(a->http);
    hk_admin_app_free(a->app);
    if (a->base != NULL)
        event_base_free(a->base);
    hq__sconn_release(&a->redis);
    hk_admin_api_free(a->api);
    for (size_t i = 0; i < a->nroutes; i++)
        free(a->routes[i].path);
    free(a);
}

int
hk_admin_client_new(const struct hq_store_options *store, int max_timeout_ms,
                    hq_client **out, char *err, size_t errsize)
{
    struct hq_store_options so = *store;
    int rc;

    if (so.timeout_ms <= 0 || so.timeout_ms > max_timeout_ms)
        so.timeout_ms = max_timeout_ms;
    rc = hq_client_new(&so, out);
    if (rc == HQ_OK || rc == HQ_ESTORE)
        return 0;
    snprintf(err, errsize, "admin: %s",
             *out ? hq_client_errmsg(*out) : "out of memory");
    hq_client_free(*out);
    *out = NULL;
    return -1;
}

static json_t *
refuse(struct hk_admin_refusal *why, int code, const char *name,
       const char *detail)
{
    why->code = code;
    why->name = name;
    snprintf(why->detail, sizeof(why->detail), "%s", detail);
    return NULL;
}

json_t *
hk_admin_json_object(struct evhttp_request *req, const char *const *allowed,
                     struct hk_admin_refusal *why)
{
    const char *type = evhttp_find_header(evhttp_request_get_input_headers(req),
                                          "Content-Type");
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *key;
    json_error_t jerr;
    json_t *doc, *v;

    if (type == NULL || strncasecmp(type, "application/json", 16) != 0 ||
        (type[16] != '\0' && type[16] != ';'))
        return refuse(why, 415, "unsupported_media_type",
                      "the body must be JSON, with Content-Type: "
                      "application/json");
    doc = json_loadb(len ? (const char *)evbuffer_pullup(in, -1) : "", len, 0,
                     &jerr);
    if (doc == NULL) {
        refuse(why, 400, "invalid_json", "");
        snprintf(why->detail, sizeof(why->detail),
                 "invalid JSON at line %d, column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        return refuse(why, 400, "invalid_json",
                      "the body must be a JSON object");
    }
    if (allowed == NULL)
        return doc;
    json_object_foreach(doc, key, v) {
        size_t i;

        for (i = 0; allowed[i] != NULL; i++)
            if (strcmp(key, allowed[i]) == 0)
                break;
        if (allowed[i] == NULL) {
            refuse(why, 400, "unknown_field", "");
            snprintf(why->detail, sizeof(why->detail),
                     "unknown field '%.100s'", key);
            json_decref(doc);
            return NULL;
        }
    }
    return doc;
}
