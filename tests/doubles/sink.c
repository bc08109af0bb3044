/*
 * sink: a delivery target for tests, the benchmark and the demo. Records
 * every request it gets and answers with a status it is told.
 *
 *   sink [--port N] [--log FILE] [--status N] [--delay-ms N] [--quiet]
 *
 * --port 0 (the default) takes a free port; the bound port is printed on
 * stdout, alone on a line. Each request is appended to --log as one JSON
 * line: {"t": unix ms (float), "path": P, "status": S, "id", "key", "seq",
 * "attempt" (the Hookq-* headers, null when absent), "content_type",
 * "webhook_id", "webhook_timestamp", "webhook_signature" (the Standard
 * Webhooks headers, null when absent), "body": the body parsed as JSON, or
 * as a string when it is not JSON, "raw": the body's bytes as a string}.
 *
 * Control: POST /_control with a JSON object, any of
 *   {"status": N}            answer N from now on (default 200)
 *   {"delay_ms": N}          answer N ms late
 *   {"fail_first": N}        answer 500 to the next N requests
 *   {"key_status": {"K": N}} answer N to deliveries of key K (0 removes)
 *   {"location": "URL"}      send this Location header ("" stops)
 * GET /_stats answers {"requests": N}.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <jansson.h>

#include "double_common.h"

static struct {
    struct event_base *base;
    FILE *log;
    int status, delay_ms, fail_first;
    json_t *key_status;
    char location[512];
    long requests;
} g;

/* Answer {"status": N} with status N, `delay_ms` late. */
static void
reply(struct evhttp_request *req, int status, int delay_ms)
{
    char body[32];

    snprintf(body, sizeof(body), "{\"status\":%d}", status);
    dbl_reply(g.base, req, status, body, NULL, delay_ms);
}

static void
control(struct evhttp_request *req)
{
    size_t len;
    char *buf = dbl_body(req, &len);
    json_t *o = json_loads(buf, 0, NULL), *v;
    const char *k;

    free(buf);
    if (!json_is_object(o)) {
        json_decref(o);
        reply(req, 400, 0);
        return;
    }
    if ((v = json_object_get(o, "status")))
        g.status = (int)json_integer_value(v);
    if ((v = json_object_get(o, "delay_ms")))
        g.delay_ms = (int)json_integer_value(v);
    if ((v = json_object_get(o, "location")) && json_is_string(v))
        snprintf(g.location, sizeof(g.location), "%s", json_string_value(v));
    if ((v = json_object_get(o, "fail_first")))
        g.fail_first = (int)json_integer_value(v);
    json_object_foreach(json_object_get(o, "key_status"), k, v) {
        if (json_integer_value(v))
            json_object_set(g.key_status, k, v);
        else
            json_object_del(g.key_status, k);
    }
    json_decref(o);
    reply(req, 200, 0);
}

static json_t *
header_json(struct evkeyvalq *h, const char *name)
{
    const char *v = evhttp_find_header(h, name);

    return v ? json_string(v) : json_null();
}

static void
handle(struct evhttp_request *req, void *arg)
{
    struct timespec ts;
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *uri = evhttp_request_get_uri(req), *key;
    json_t *rec, *body, *raw, *ks;
    size_t len;
    char *buf, *line;
    int status = g.status;

    (void)arg;
    if (strcmp(uri, "/_control") == 0) {
        control(req);
        return;
    }
    if (strcmp(uri, "/_stats") == 0) {
        struct evbuffer *b = evbuffer_new();

        evbuffer_add_printf(b, "{\"requests\":%ld}", g.requests);
        evhttp_send_reply(req, 200, NULL, b);
        evbuffer_free(b);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    g.requests++;
    buf = dbl_body(req, &len);
    body = json_loadb(buf, len, JSON_DECODE_ANY, NULL);
    if (!body)
        body = json_stringn_nocheck(buf, len);
    raw = json_stringn_nocheck(buf, len);
    free(buf);
    key = evhttp_find_header(h, "Hookq-Key");
    if (key && (ks = json_object_get(g.key_status, key)))
        status = (int)json_integer_value(ks);
    if (g.fail_first > 0) {
        g.fail_first--;
        status = 500;
    }
    rec = json_object();
    json_object_set_new(rec, "t", json_real((double)ts.tv_sec * 1000.0 +
                                            (double)ts.tv_nsec / 1e6));
    json_object_set_new(rec, "path", json_string(uri));
    json_object_set_new(rec, "status", json_integer(status));
    json_object_set_new(rec, "id", header_json(h, "Hookq-Id"));
    json_object_set_new(rec, "key", header_json(h, "Hookq-Key"));
    json_object_set_new(rec, "seq", header_json(h, "Hookq-Seq"));
    json_object_set_new(rec, "attempt", header_json(h, "Hookq-Attempt"));
    json_object_set_new(rec, "content_type", header_json(h, "Content-Type"));
    json_object_set_new(rec, "webhook_id", header_json(h, "webhook-id"));
    json_object_set_new(rec, "webhook_timestamp",
                        header_json(h, "webhook-timestamp"));
    json_object_set_new(rec, "webhook_signature",
                        header_json(h, "webhook-signature"));
    json_object_set_new(rec, "body", body);
    json_object_set_new(rec, "raw", raw);
    if (g.log) {
        line = json_dumps(rec, JSON_COMPACT);
        fprintf(g.log, "%s\n", line);
        fflush(g.log);
        free(line);
    }
    json_decref(rec);
    if (g.location[0])
        evhttp_add_header(evhttp_request_get_output_headers(req), "Location",
                          g.location);
    reply(req, status, g.delay_ms);
}

int
main(int argc, char **argv)
{
    struct evhttp *http;
    int port = 0;

    g.status = 200;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--status") == 0 && i + 1 < argc) {
            g.status = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--delay-ms") == 0 && i + 1 < argc) {
            g.delay_ms = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc) {
            g.log = fopen(argv[++i], "a");
            if (!g.log) {
                fprintf(stderr, "sink: cannot open '%s': %s\n", argv[i],
                        strerror(errno));
                return 1;
            }
        } else if (strcmp(argv[i], "--quiet") == 0) {
            /* nothing to say anyway */
        } else {
            fprintf(stderr, "usage: sink [--port N] [--log FILE] "
                            "[--status N] [--delay-ms N]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    g.key_status = json_object();
    g.base = event_base_new();
    http = evhttp_new(g.base);
    evhttp_set_gencb(http, handle, NULL);
    if (dbl_listen(http, port, "sink") != 0)
        return 1;
    event_base_dispatch(g.base);
    return 0;
}
