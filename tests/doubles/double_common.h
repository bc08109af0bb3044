/*
 * What the HTTP test doubles (sink, mockapi) share: reading a request's
 * body, answering now or some milliseconds late, and listening on
 * 127.0.0.1 with the bound port printed on stdout.
 *
 * Header-only (static inline), because tests/CMakeLists.txt builds each .c
 * file in tests/doubles as a program of its own.
 */
#ifndef HQ_DOUBLE_COMMON_H
#define HQ_DOUBLE_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

/* The request body, NUL-terminated, its length in `*len`; free() it. */
static inline char *
dbl_body(struct evhttp_request *req, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    char *buf;

    *len = evbuffer_get_length(in);
    buf = malloc(*len + 1);
    evbuffer_remove(in, buf, *len);
    buf[*len] = '\0';
    return buf;
}

struct dbl_pending {
    struct evhttp_request *req;
    int status;
    char *body;
    char retry_after[32];
    struct event *ev;
};

static inline void
dbl_send_now(struct dbl_pending *pd)
{
    struct evbuffer *b = evbuffer_new();
    struct evkeyvalq *oh = evhttp_request_get_output_headers(pd->req);

    evbuffer_add(b, pd->body, strlen(pd->body));
    evhttp_add_header(oh, "Content-Type", "application/json");
    if (pd->retry_after[0])
        evhttp_add_header(oh, "Retry-After", pd->retry_after);
    evhttp_send_reply(pd->req, pd->status, NULL, b);
    evbuffer_free(b);
    free(pd->body);
    if (pd->ev)
        event_free(pd->ev);
    free(pd);
}

static inline void
dbl_delayed_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dbl_send_now(arg);
}

/*
 * Answer `req` with `status` and the JSON `body` (copied), with a
 * Retry-After header when `retry_after` is not NULL; `delay_ms` > 0 answers
 * that late, from a timer on `base`.
 */
static inline void
dbl_reply(struct event_base *base, struct evhttp_request *req, int status,
          const char *body, const char *retry_after, int delay_ms)
{
    struct dbl_pending *pd = calloc(1, sizeof(*pd));

    pd->req = req;
    pd->status = status;
    pd->body = strdup(body);
    if (retry_after)
        snprintf(pd->retry_after, sizeof(pd->retry_after), "%s", retry_after);
    if (delay_ms > 0) {
        struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};

        pd->ev = evtimer_new(base, dbl_delayed_cb, pd);
        evtimer_add(pd->ev, &tv);
        return;
    }
    dbl_send_now(pd);
}

/*
 * Bind `http` on 127.0.0.1:`port` (0: a free port) and print the bound port
 * on stdout, alone on a line. On failure says so on stderr, as `name`, and
 * returns -1.
 */
static inline int
dbl_listen(struct evhttp *http, int port, const char *name)
{
    struct evhttp_bound_socket *bs;
    struct sockaddr_storage ss;
    ev_socklen_t sl = sizeof(ss);

    bs = evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)port);
    if (!bs) {
        fprintf(stderr, "%s: cannot listen on port %d\n", name, port);
        return -1;
    }
    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl);
    printf("%d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
    fflush(stdout);
    return 0;
}

#endif /* HQ_DOUBLE_COMMON_H */
