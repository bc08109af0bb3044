/*
 * The admin listener (see admin_http.h). One thread runs an event_base with
 * evhttp; requests are served one at a time, which is plenty for health
 * checks, scrapes and an operator's dashboard.
 *
 * DESIGN: this file is the server, not the admin API. Route sets register
 * exact and prefix routes with the methods they take, periodic tasks on
 * the admin thread, and a clean-up for hk_admin_free(); dispatch() checks
 * what every route needs alike (token, body size, route, method) before a
 * handler runs. What the route sets answer alike is here too, so that
 * every route answers with the same headers and error document: the JSON
 * replies, the reading of a JSON object body (Content-Type checked: see
 * hk_admin_json_body()) and a Redis client with a short timeout.
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

#include "admin_http.h"
#include "common_int.h"

#include "banned_int.h"

#define MAX_ROUTES 32
#define MAX_TICKS 4
#define MAX_CLEANUPS 4
#define BODY_MAX (64 * 1024)
/* evhttp answers a body over its own limit with an HTML page: it is set
 * well above BODY_MAX, so that ours gets the JSON 413 for any body up to
 * this. */
#define BODY_MAX_EVHTTP (2 * 1024 * 1024)

struct route {
    char *path;
    unsigned methods;    /* enum hk_admin_methods */
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

/* A clean-up of hk_admin_on_free(). */
struct cleanup {
    void (*fn)(void *arg);
    void *arg;
};

struct hk_admin {
    const struct hq__config *cfg;

    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    int port;
    pthread_t thread;
    int started;
    /* Made active by hk_admin_free() to stop the loop: an event, because a
     * loopbreak sent before the thread enters event_base_dispatch() is
     * forgotten (the loop clears the flag on entry), and the join would
     * then wait forever; an active event is run whenever the loop starts. */
    struct event *stop_ev;

    struct route routes[MAX_ROUTES];
    size_t nroutes;
    struct tick ticks[MAX_TICKS];
    size_t nticks;
    struct cleanup cleanups[MAX_CLEANUPS];
    size_t ncleanups;
};

/* ------------------------------------------------------------------------ */
/* Answers.                                                                 */

void
hk_admin_reply(struct evhttp_request *req, int code, const char *type,
               const char *body, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *b = evbuffer_new();

    if (b == NULL || evbuffer_add(b, body, len) != 0) {
        evbuffer_free(b);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_send_reply(req, code, NULL, b);
    evbuffer_free(b);
}

void
hk_admin_reply_json(struct evhttp_request *req, int code, char *body)
{
    if (body == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    hk_admin_reply(req, code, "application/json", body, strlen(body));
    free(body);
}

void
hk_admin_reply_error(struct evhttp_request *req, int code, const char *name,
                     const char *detail)
{
    json_t *o = json_pack("{s:s, s:s}", "error", name, "detail", detail);

    hk_admin_reply_json(req, code, o ? json_dumps(o, JSON_COMPACT) : NULL);
    json_decref(o);
}

/* The server's own answers: a JSON text ending in a newline. */
static void
reply_text(struct evhttp_request *req, int code, const char *body)
{
    hk_admin_reply(req, code, "application/json", body, strlen(body));
}

/* ------------------------------------------------------------------------ */
/* Dispatch.                                                                */

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

static unsigned
method_bit(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
    case EVHTTP_REQ_HEAD:
        return HK_ADMIN_GET;
    case EVHTTP_REQ_POST:
        return HK_ADMIN_POST;
    case EVHTTP_REQ_PUT:
        return HK_ADMIN_PUT;
    case EVHTTP_REQ_DELETE:
        return HK_ADMIN_DELETE;
    default:
        return 0;
    }
}

/* 405, with the methods the route takes in Allow and in the detail. */
static void
reply_not_allowed(struct evhttp_request *req, unsigned methods)
{
    static const struct {
        unsigned bit;
        const char *names;
    } names[] = {{HK_ADMIN_GET, "GET, HEAD"},
                 {HK_ADMIN_POST, "POST"},
                 {HK_ADMIN_PUT, "PUT"},
                 {HK_ADMIN_DELETE, "DELETE"}};
    char allow[64];
    size_t n = 0;

    allow[0] = '\0';
    for (size_t i = 0; i < HQ_ARRAY_SIZE(names); i++)
        if (methods & names[i].bit)
            n += (size_t)snprintf(allow + n, sizeof(allow) - n, "%s%s",
                                  n ? ", " : "", names[i].names);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    hk_admin_reply_error(req, 405, "method_not_allowed", allow);
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
        reply_text(req, 401, "{\"error\":\"unauthorized\"}\n");
        return;
    }
    if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > BODY_MAX)
        reply_text(req, 413, "{\"error\":\"body_too_large\","
                             "\"detail\":\"the body is over 64 KiB\"}\n");
    else if (rt == NULL)
        reply_text(req, 404, "{\"error\":\"not_found\"}\n");
    else if (!(rt->methods & method_bit(evhttp_request_get_command(req))))
        reply_not_allowed(req, rt->methods);
    else
        rt->fn(a, req, rt->arg);
}

/* ------------------------------------------------------------------------ */
/* Routes, ticks, clean-ups.                                                */

static int
add_route(struct hk_admin *a, const char *path, unsigned methods,
          hk_admin_route_fn *fn, void *arg, int public, int prefix)
{
    struct route *rt;

    if (a->started || a->nroutes >= MAX_ROUTES || methods == 0)
        return -1;
    rt = &a->routes[a->nroutes];
    rt->path = strdup(path);
    if (rt->path == NULL)
        return -1;
    rt->methods = methods;
    rt->fn = fn;
    rt->arg = arg;
    rt->public = public;
    rt->prefix = prefix;
    a->nroutes++;
    return 0;
}

int
hk_admin_route(struct hk_admin *a, const char *path, unsigned methods,
               hk_admin_route_fn *fn, void *arg)
{
    return add_route(a, path, methods, fn, arg, 0, 0);
}

int
hk_admin_route_public(struct hk_admin *a, const char *path, unsigned methods,
                      hk_admin_route_fn *fn, void *arg)
{
    return add_route(a, path, methods, fn, arg, 1, 0);
}

int
hk_admin_route_prefix(struct hk_admin *a, const char *prefix,
                      unsigned methods, hk_admin_route_fn *fn, void *arg)
{
    return add_route(a, prefix, methods, fn, arg, 0, 1);
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
hk_admin_on_free(struct hk_admin *a, void (*fn)(void *arg), void *arg)
{
    if (a->started || a->ncleanups >= MAX_CLEANUPS)
        return -1;
    a->cleanups[a->ncleanups].fn = fn;
    a->cleanups[a->ncleanups].arg = arg;
    a->ncleanups++;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The server.                                                              */

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hk_admin *a = arg;

    (void)fd;
    (void)what;
    event_base_loopbreak(a->base);
}

struct hk_admin *
hk_admin_new(const struct hq__config *cfg, char *err, size_t errsize)
{
    struct hk_admin *a;

    evthread_use_pthreads();
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    a->cfg = cfg;
    a->base = event_base_new();
    a->stop_ev = a->base ? event_new(a->base, -1, 0, stop_cb, a) : NULL;
    a->http = a->stop_ev ? evhttp_new(a->base) : NULL;
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
hk_admin_free(struct hk_admin *a)
{
    if (a == NULL)
        return;
    if (a->started) {
        event_active(a->stop_ev, EV_READ, 0);
        pthread_join(a->thread, NULL);
    }
    if (a->stop_ev != NULL)
        event_free(a->stop_ev);
    for (size_t i = 0; i < a->nticks; i++)
        event_free(a->ticks[i].ev);
    if (a->http != NULL)
        evhttp_free(a->http);
    for (size_t i = a->ncleanups; i-- > 0;)
        a->cleanups[i].fn(a->cleanups[i].arg);
    if (a->base != NULL)
        event_base_free(a->base);
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

/* Answer a body refused by hk_admin_json_body(); returns NULL for it. */
static json_t *
refuse(struct evhttp_request *req, int code, const char *name,
       const char *detail)
{
    hk_admin_reply_error(req, code, name, detail);
    return NULL;
}

json_t *
hk_admin_json_body(struct evhttp_request *req, const char *const *allowed)
{
    const char *type = evhttp_find_header(evhttp_request_get_input_headers(req),
                                          "Content-Type");
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *key;
    char detail[300];
    json_error_t jerr;
    json_t *doc, *v;

    if (type == NULL || strncasecmp(type, "application/json", 16) != 0 ||
        (type[16] != '\0' && type[16] != ';'))
        return refuse(req, 415, "unsupported_media_type",
                      "the body must be JSON, with Content-Type: "
                      "application/json");
    doc = json_loadb(len ? (const char *)evbuffer_pullup(in, -1) : "", len, 0,
                     &jerr);
    if (doc == NULL) {
        snprintf(detail, sizeof(detail),
                 "invalid JSON at line %d, column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return refuse(req, 400, "invalid_json", detail);
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        return refuse(req, 400, "invalid_json",
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
            snprintf(detail, sizeof(detail), "unknown field '%.100s'", key);
            json_decref(doc);
            return refuse(req, 400, "unknown_field", detail);
        }
    }
    return doc;
}
