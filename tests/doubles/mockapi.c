/*
 * mockapi: a stand-in for the external service's API, for tests, the
 * benchmark and the demo. It enforces its own rate limit, strictly: at most
 * R accepted calls per (token, endpoint) in any window of W ms (a sliding
 * log: a call is refused when R accepted calls arrived in the W ms before
 * it), and answers 429 beyond it. Every call is recorded with its arrival
 * time.
 *
 *   mockapi [--port N] [--rate R/Wms] [--log FILE] [--verbose] [--quiet]
 *
 * --port 0 (the default) takes a free port; the bound port is printed on
 * stdout, alone on a line. The endpoint of a call is its method and its path
 * without the query, with every segment made only of digits written {}:
 * "GET /posts/{}" (hookq's route form for GET /posts/{data.post_id}).
 *
 * Answers: no "Authorization: Bearer T" -> 401; T marked unauthorized ->
 * 401; a path marked failing -> that status; a token told to get 429s -> 429
 * with Retry-After; over the rate -> 429 (Retry-After: seconds until a
 * slot, rounded up); else 200 {"path":..., "id":..., "n":...} where id is the
 * last path segment and n counts the pair's accepted calls.
 *
 * With --verbose, each call is also told on stderr, one line with the time
 * (the demo shows the pacing this way).
 *
 * Each call is appended to --log as one JSON line:
 *   {"t": unix ms (float), "mono": monotonic ms (float), "token": T,
 *    "method": M, "path": P, "endpoint": E, "status": S}
 *
 * Control: POST /_control with a JSON object, any of
 *   {"unauthorized": [T...]}   answer 401 to these tokens
 *   {"authorized": [T...]}     stop doing so
 *   {"fail": {"/path": 503}}   answer this status for paths starting so
 *                              (status 0 removes the entry)
 *   {"delay_ms": N}            answer every call N ms late
 *   {"force429": {"token": T, "count": N, "retry_after": S}}
 *                              the next N calls of T get 429 with
 *                              Retry-After: S (omitted when S < 0)
 *   {"rate": "R/W"}            change the limit (W in ms)
 * GET /_stats answers {"calls": N, "ok": N, "429": N, "401": N}.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <jansson.h>

#include "double_common.h"

#define MAX_RATE 10000

struct pair {
    char *token, *endpoint;
    double *times;      /* ring of the last R accepted arrivals (mono ms) */
    int r, head, n;
    long accepted;
    struct pair *next;
};

struct fail {
    char *prefix;
    int status;
    struct fail *next;
};

static struct {
    struct event_base *base;
    int rate;
    double window_ms;
    FILE *log;
    struct pair *pairs;
    struct fail *fails;
    json_t *unauthorized;   /* object: token -> true */
    char *force_token;
    int force_count, force_retry_after;
    int delay_ms;
    long calls, ok, n429, n401;
    int verbose;
} g;

static double
now_ms(clockid_t clk)
{
    struct timespec t;

    clock_gettime(clk, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

static struct pair *
pair_get(const char *token, const char *endpoint)
{
    struct pair *p;

    for (p = g.pairs; p; p = p->next)
        if (strcmp(p->token, token) == 0 && strcmp(p->endpoint, endpoint) == 0)
            break;
    if (!p) {
        p = calloc(1, sizeof(*p));
        p->token = strdup(token);
        p->endpoint = strdup(endpoint);
        p->next = g.pairs;
        g.pairs = p;
    }
    if (p->r != g.rate) { /* the rate changed: start afresh */
        free(p->times);
        p->times = calloc((size_t)g.rate, sizeof(double));
        p->r = g.rate;
        p->head = p->n = 0;
    }
    return p;
}

/* Admit a call at `t` or say how long until a slot frees. */
static int
pair_admit(struct pair *p, double t, double *wait_ms)
{
    if (p->n == p->r) {
        double oldest = p->times[p->head];

        if (t - oldest < g.window_ms) {
            *wait_ms = oldest + g.window_ms - t;
            return 0;
        }
        p->head = (p->head + 1) % p->r;
        p->n--;
    }
    p->times[(p->head + p->n) % p->r] = t;
    p->n++;
    p->accepted++;
    return 1;
}

static void
endpoint_of(const char *method, const char *path, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "%s ", method);
    const char *s = path;

    while (*s && *s != '?' && n + 3 < size) {
        const char *e = s + 1;
        int digits = 1;

        /* s points at '/': look at the segment after it. */
        while (*e && *e != '/' && *e != '?') {
            if (*e < '0' || *e > '9')
                digits = 0;
            e++;
        }
        if (e == s + 1)
            digits = 0;
        buf[n++] = '/';
        if (digits) {
            buf[n++] = '{';
            buf[n++] = '}';
        } else {
            size_t k = (size_t)(e - s - 1);

            if (n + k + 1 >= size)
                k = size - n - 1;
            memcpy(buf + n, s + 1, k);
            n += k;
        }
        s = e;
    }
    buf[n] = '\0';
}

static void
reply(struct evhttp_request *req, int status, const char *body,
      const char *retry_after)
{
    dbl_reply(g.base, req, status, body, retry_after,
              status != 0 ? g.delay_ms : 0);
}

static void
record(double t, double mono, const char *token, const char *method,
       const char *path, const char *endpoint, int status)
{
    json_t *o;
    char *s;

    g.calls++;
    if (g.verbose) {
        time_t secs = (time_t)(t / 1000);
        struct tm tm;

        gmtime_r(&secs, &tm);
        fprintf(stderr, "mockapi: %02d:%02d:%02d.%03d %s %s (token %s) -> %d\n",
                tm.tm_hour, tm.tm_min, tm.tm_sec, (int)((long long)t % 1000),
                method, path, token, status);
    }
    if (status == 200)
        g.ok++;
    else if (status == 429)
        g.n429++;
    else if (status == 401)
        g.n401++;
    if (!g.log)
        return;
    o = json_pack("{s:f,s:f,s:s,s:s,s:s,s:s,s:i}", "t", t, "mono", mono,
                  "token", token, "method", method, "path", path, "endpoint",
                  endpoint, "status", status);
    s = json_dumps(o, JSON_COMPACT);
    fprintf(g.log, "%s\n", s);
    fflush(g.log);
    free(s);
    json_decref(o);
}

static const char *
method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_PATCH: return "PATCH";
    case EVHTTP_REQ_HEAD: return "HEAD";
    default: return "OTHER";
    }
}

static void
control(struct evhttp_request *req)
{
    size_t len;
    char *buf = dbl_body(req, &len);
    json_t *o, *v;
    size_t i;
    const char *k;

    o = json_loads(buf, 0, NULL);
    free(buf);
    if (!json_is_object(o)) {
        json_decref(o);
        reply(req, 400, "{\"error\":\"not a json object\"}", NULL);
        return;
    }
    json_array_foreach(json_object_get(o, "unauthorized"), i, v)
        json_object_set_new(g.unauthorized, json_string_value(v), json_true());
    json_array_foreach(json_object_get(o, "authorized"), i, v)
        json_object_del(g.unauthorized, json_string_value(v));
    json_object_foreach(json_object_get(o, "fail"), k, v) {
        struct fail **fp, *f;

        for (fp = &g.fails; *fp; fp = &(*fp)->next)
            if (strcmp((*fp)->prefix, k) == 0)
                break;
        if (*fp && json_integer_value(v) == 0) {
            f = *fp;
            *fp = f->next;
            free(f->prefix);
            free(f);
        } else if (*fp) {
            (*fp)->status = (int)json_integer_value(v);
        } else if (json_integer_value(v)) {
            f = calloc(1, sizeof(*f));
            f->prefix = strdup(k);
            f->status = (int)json_integer_value(v);
            f->next = g.fails;
            g.fails = f;
        }
    }
    if ((v = json_object_get(o, "delay_ms")))
        g.delay_ms = (int)json_integer_value(v);
    if ((v = json_object_get(o, "force429"))) {
        free(g.force_token);
        g.force_token = strdup(json_string_value(json_object_get(v, "token"))
                                   ? json_string_value(json_object_get(v, "token"))
                                   : "");
        g.force_count = (int)json_integer_value(json_object_get(v, "count"));
        g.force_retry_after = json_object_get(v, "retry_after")
                                  ? (int)json_integer_value(
                                        json_object_get(v, "retry_after"))
                                  : -1;
    }
    if ((v = json_object_get(o, "rate")) && json_is_string(v)) {
        int r;
        double w;

        if (sscanf(json_string_value(v), "%d/%lf", &r, &w) == 2 && r > 0 &&
            r <= MAX_RATE && w > 0) {
            g.rate = r;
            g.window_ms = w;
        }
    }
    json_decref(o);
    reply(req, 200, "{\"ok\":true}", NULL);
}

static void
handle(struct evhttp_request *req, void *arg)
{
    double t = now_ms(CLOCK_REALTIME), mono = now_ms(CLOCK_MONOTONIC);
    const char *uri = evhttp_request_get_uri(req);
    const char *method = method_name(evhttp_request_get_command(req));
    const char *auth = evhttp_find_header(
        evhttp_request_get_input_headers(req), "Authorization");
    const char *token = "", *id;
    char endpoint[1024], body[1400], ra[32];
    struct fail *f;
    struct pair *p;
    double wait;
    int status;

    (void)arg;
    if (strcmp(uri, "/_control") == 0) {
        control(req);
        return;
    }
    if (strcmp(uri, "/_stats") == 0) {
        snprintf(body, sizeof(body),
                 "{\"calls\":%ld,\"ok\":%ld,\"429\":%ld,\"401\":%ld}",
                 g.calls, g.ok, g.n429, g.n401);
        reply(req, 200, body, NULL);
        return;
    }
    if (auth && strncmp(auth, "Bearer ", 7) == 0)
        token = auth + 7;
    endpoint_of(method, uri, endpoint, sizeof(endpoint));
    if (!*token || json_object_get(g.unauthorized, token)) {
        record(t, mono, token, method, uri, endpoint, 401);
        reply(req, 401, "{\"error\":\"unauthorized\"}", NULL);
        return;
    }
    for (f = g.fails; f; f = f->next) {
        if (strncmp(uri, f->prefix, strlen(f->prefix)) == 0) {
            record(t, mono, token, method, uri, endpoint, f->status);
            snprintf(body, sizeof(body), "{\"error\":\"told to fail\"}");
            reply(req, f->status, body, NULL);
            return;
        }
    }
    if (g.force_count > 0 && g.force_token && strcmp(g.force_token, token) == 0) {
        g.force_count--;
        record(t, mono, token, method, uri, endpoint, 429);
        if (g.force_retry_after >= 0)
            snprintf(ra, sizeof(ra), "%d", g.force_retry_after);
        reply(req, 429, "{\"error\":\"slow down\"}",
              g.force_retry_after >= 0 ? ra : NULL);
        return;
    }
    p = pair_get(token, endpoint);
    if (!pair_admit(p, mono, &wait)) {
        snprintf(ra, sizeof(ra), "%d", (int)((wait + 999) / 1000));
        record(t, mono, token, method, uri, endpoint, 429);
        reply(req, 429, "{\"error\":\"rate limited\"}", ra);
        return;
    }
    status = 200;
    id = strrchr(uri, '/');
    id = id ? id + 1 : uri;
    {
        json_t *o = json_pack("{s:s,s:s,s:i}", "path", uri, "id", id, "n",
                              (int)p->accepted);
        char *s = json_dumps(o, JSON_COMPACT);

        snprintf(body, sizeof(body), "%s", s);
        free(s);
        json_decref(o);
    }
    record(t, mono, token, method, uri, endpoint, status);
    reply(req, status, body, NULL);
}

int
main(int argc, char **argv)
{
    struct evhttp *http;
    int port = 0, quiet = 0;

    g.rate = 2;
    g.window_ms = 1000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc) {
            if (sscanf(argv[++i], "%d/%lf", &g.rate, &g.window_ms) != 2 ||
                g.rate < 1 || g.rate > MAX_RATE || g.window_ms <= 0) {
                fprintf(stderr, "mockapi: bad --rate '%s' (R/Wms)\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc) {
            g.log = fopen(argv[++i], "a");
            if (!g.log) {
                fprintf(stderr, "mockapi: cannot open '%s': %s\n", argv[i],
                        strerror(errno));
                return 1;
            }
        } else if (strcmp(argv[i], "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(argv[i], "--verbose") == 0) {
            g.verbose = 1;
        } else {
            fprintf(stderr,
                    "usage: mockapi [--port N] [--rate R/Wms] [--log FILE]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    /* Arrival times are the point of this program: on a busy host, ask to
     * run as soon as a request arrives (real-time FIFO, or at least a higher
     * priority), so that they are taken when it arrives, not when the
     * scheduler gets to us. Its work per request is tiny. Without
     * permission, the default priority is kept. */
    {
        struct sched_param sp = {.sched_priority = 10};

        if (!getenv("HQ_MOCKAPI_NO_RT") &&
            sched_setscheduler(0, SCHED_FIFO, &sp) != 0 &&
            setpriority(PRIO_PROCESS, 0, -10) != 0)
            errno = 0;
    }
    g.unauthorized = json_object();
    g.base = event_base_new();
    http = evhttp_new(g.base);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                                         EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                         EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(http, handle, NULL);
    if (dbl_listen(http, port, "mockapi") != 0)
        return 1;
    if (!quiet)
        fprintf(stderr, "mockapi: %d calls per %.0f ms per (token, endpoint)\n",
                g.rate, g.window_ms);
    event_base_dispatch(g.base);
    return 0;
}
