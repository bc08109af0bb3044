/*
 * libcurl multi on a libevent loop (see curl_event_int.h).
 *
 * DESIGN: libcurl tells us which sockets to watch (socket callback) and when
 * to call it back (timer callback); we turn those into libevent events and
 * feed readiness back with curl_multi_socket_action(). Finished transfers
 * are collected with curl_multi_info_read() after each action, never from
 * inside a libcurl callback, so a completion callback may start new calls.
 * Each call keeps its own copy of everything it sends, and accumulates the
 * response body up to max_response bytes.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "clock_int.h"
#include "curl_event_int.h"

#define DEFAULT_MAX_RESPONSE (16u << 20)

struct hq__http {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct hq__http_call *calls; /* in flight, doubly linked */
    size_t ncalls;
    int in_action;               /* inside curl_multi_socket_action */
};

struct hq__http_call {
    struct hq__http *h;
    struct hq__http_call *prev, *next;
    CURL *easy;
    struct curl_slist *headers;
    hq__http_done_fn *fn;
    void (*on_send)(void *arg);
    void *arg;
    char *body;                  /* response, NUL-terminated */
    size_t body_len, body_cap, max_response;
    int truncated;
    char content_type[128];
    char location[512];          /* Location header, "" when absent */
    int64_t retry_after_ms;
    char errbuf[CURL_ERROR_SIZE];
    int64_t started_ns;          /* hq__mono_ns() when the call was made */
};

/* Per watched socket: its libevent event. */
struct sock {
    struct event *ev;
};

static void
call_unlink(struct hq__http_call *c)
{
    struct hq__http *h = c->h;

    if (c->prev)
        c->prev->next = c->next;
    else
        h->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->ncalls--;
}

static void
call_free(struct hq__http_call *c)
{
    curl_multi_remove_handle(c->h->multi, c->easy);
    curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->headers);
    free(c->body);
    free(c);
}

static const char *
failure_text(CURLcode cc, int *failure)
{
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        *failure = HQ_HTTP_TIMEOUT;
        return "timed out";
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        *failure = HQ_HTTP_CONNECT;
        return curl_easy_strerror(cc);
    default:
        *failure = HQ_HTTP_OTHER;
        return curl_easy_strerror(cc);
    }
}

static void
finish(struct hq__http_call *c, CURLcode cc)
{
    struct hq__http_response r;
    char msg[CURL_ERROR_SIZE + 64];
    long status = 0;

    memset(&r, 0, sizeof(r));
    r.elapsed_ms = (hq__mono_ns() - c->started_ns) / 1000000;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
        r.failure = HQ_HTTP_OK;
        r.status = (int)status;
    } else {
        const char *what = failure_text(cc, &r.failure);

        if (r.failure == HQ_HTTP_TIMEOUT)
            snprintf(msg, sizeof(msg), "timed out after %lld ms",
                     (long long)r.elapsed_ms);
        else
            snprintf(msg, sizeof(msg), "%s%s%s", what,
                     c->errbuf[0] ? ": " : "", c->errbuf);
        r.error = msg;
    }
    r.body = c->body ? c->body : "";
    r.body_len = c->body_len;
    r.content_type = c->content_type;
    r.location = c->location;
    r.retry_after_ms = c->retry_after_ms;
    call_unlink(c);
    c->fn(&r, c->arg);
    call_free(c);
}

static void
check_done(struct hq__http *h)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(h->multi, &left))) {
        struct hq__http_call *c = NULL;

        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        finish(c, m->data.result);
    }
}

static void
action(struct hq__http *h, curl_socket_t fd, int mask)
{
    int running;

    h->in_action = 1;
    curl_multi_socket_action(h->multi, fd, mask, &running);
    h->in_action = 0;
    check_done(h);
}

static void
on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct hq__http *h = arg;
    int mask = 0;

    if (what & EV_READ)
        mask |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        mask |= CURL_CSELECT_OUT;
    action(h, fd, mask);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct hq__http *h = userp;
    struct sock *s = socketp;
    short kind = EV_PERSIST;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            event_free(s->ev);
            free(s);
            curl_multi_assign(h->multi, fd, NULL);
        }
        return 0;
    }
    if (what & CURL_POLL_IN)
        kind |= EV_READ;
    if (what & CURL_POLL_OUT)
        kind |= EV_WRITE;
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        curl_multi_assign(h->multi, fd, s);
    } else {
        event_free(s->ev);
    }
    s->ev = event_new(h->base, fd, kind, on_socket_event, h);
    if (!s->ev)
        return -1;
    event_add(s->ev, NULL);
    return 0;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct hq__http *h = userp;
    struct timeval tv;

    (void)multi;
    if (timeout_ms < 0) {
        evtimer_del(h->timer);
        return 0;
    }
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(h->timer, &tv);
    return 0;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void
global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int
hq__http_new(struct event_base *base, struct hq__http **out)
{
    struct hq__http *h;

    *out = NULL;
    pthread_once(&global_once, global_init);
    h = calloc(1, sizeof(*h));
    if (!h)
        return HQ_ENOMEM;
    h->base = base;
    h->multi = curl_multi_init();
    if (!h->multi)
        goto fail;
    h->timer = evtimer_new(base, on_timer, h);
    if (!h->timer)
        goto fail;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 256L);
    *out = h;
    return HQ_OK;
fail:
    if (h->multi)
        curl_multi_cleanup(h->multi);
    free(h);
    return HQ_ENOMEM;
}

void
hq__http_free(struct hq__http *h)
{
    if (!h)
        return;
    while (h->calls) {
        struct hq__http_call *c = h->calls;

        call_unlink(c);
        call_free(c);
    }
    /* Closing the cached connections calls socket_cb(REMOVE) for each. */
    curl_multi_cleanup(h->multi);
    event_free(h->timer);
    free(h);
}

size_t
hq__http_inflight(const struct hq__http *h)
{
    return h->ncalls;
}

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
    struct hq__http_call *c = userp;
    size_t n = size * nmemb, keep = n;

    if (c->body_len + keep > c->max_response) {
        keep = c->max_response - c->body_len;
        c->truncated = 1;
    }
    if (hq__buf_reserve(&c->body, &c->body_cap, c->body_len + keep + 1) != 0)
        return 0; /* aborts the transfer */
    memcpy(c->body + c->body_len, ptr, keep);
    c->body_len += keep;
    c->body[c->body_len] = '\0';
    return n;
}

static int
header_is(const char *line, size_t len, const char *name, const char **value,
          size_t *vlen)
{
    size_t n = strlen(name);

    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return 0;
    line += n + 1;
    len -= n + 1;
    while (len && (*line == ' ' || *line == '\t')) {
        line++;
        len--;
    }
    while (len && isspace((unsigned char)line[len - 1]))
        len--;
    *value = line;
    *vlen = len;
    return 1;
}

static size_t
header_cb(char *line, size_t size, size_t nmemb, void *userp)
{
    struct hq__http_call *c = userp;
    size_t len = size * nmemb, vlen;
    const char *v;
    char buf[128];

    if (header_is(line, len, "Retry-After", &v, &vlen)) {
        snprintf(buf, sizeof(buf), "%.*s", (int)vlen, v);
        c->retry_after_ms = hq__http_parse_retry_after(buf, time(NULL));
    } else if (header_is(line, len, "Content-Type", &v, &vlen)) {
        snprintf(c->content_type, sizeof(c->content_type), "%.*s", (int)vlen,
                 v);
    } else if (header_is(line, len, "Location", &v, &vlen)) {
        snprintf(c->location, sizeof(c->location), "%.*s", (int)vlen, v);
    } else if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new response (after 100 Continue): forget earlier headers. */
        c->retry_after_ms = -1;
        c->content_type[0] = '\0';
        c->location[0] = '\0';
    }
    return len;
}

static int
prereq_cb(void *userp, char *primary_ip, char *local_ip, int primary_port,
          int local_port)
{
    struct hq__http_call *c = userp;

    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    if (c->on_send)
        c->on_send(c->arg);
    return CURL_PREREQFUNC_OK;
}

int64_t
hq__http_parse_retry_after(const char *value, int64_t now_s)
{
    const char *s = value;
    int64_t secs = 0;
    time_t when;

    while (*s == ' ')
        s++;
    if (*s >= '0' && *s <= '9') {
        /* Past INT64_MAX ms in all is malformed, not a wrapped delay. */
        for (; *s >= '0' && *s <= '9'; s++) {
            if (secs > (INT64_MAX / 1000 - (*s - '0')) / 10)
                return -1;
            secs = secs * 10 + (*s - '0');
        }
        while (*s == ' ')
            s++;
        return *s ? -1 : secs * 1000;
    }
    when = curl_getdate(value, NULL);
    if (when == (time_t)-1)
        return -1;
    if (when <= now_s)
        return 0;
    if ((int64_t)when - now_s > INT64_MAX / 1000)
        return -1; /* a date some 292 million years away */
    return ((int64_t)when - now_s) * 1000;
}

int
hq__http_send(struct hq__http *h, const struct hq__http_request *req,
              hq__http_done_fn *fn, void *arg, struct hq__http_call **out,
              struct hq__err *err)
{
    struct hq__http_call *c;
    CURLMcode mc;

    if (out)
        *out = NULL;
    if (!req->url || strncmp(req->url, "http", 4) != 0)
        return hq__err_set(err, HQ_EINVAL, "not an http url '%s'",
                           req->url ? req->url : "");
    c = calloc(1, sizeof(*c));
    if (!c)
        return hq__err_set(err, HQ_ENOMEM, "out of memory");
    c->h = h;
    c->fn = fn;
    c->on_send = req->on_send;
    c->arg = arg;
    c->retry_after_ms = -1;
    c->max_response = req->max_response ? req->max_response
                                        : DEFAULT_MAX_RESPONSE;
    c->easy = curl_easy_init();
    if (!c->easy)
        goto nomem;
    for (size_t i = 0; i < req->nheaders; i++) {
        struct curl_slist *l = curl_slist_append(c->headers, req->headers[i]);

        if (!l)
            goto nomem;
        c->headers = l;
    }
    if (req->body) {
        /* No "Expect: 100-continue" round trip before the body. */
        struct curl_slist *l = curl_slist_append(c->headers, "Expect:");

        if (!l)
            goto nomem;
        c->headers = l;
    }
    curl_easy_setopt(c->easy, CURLOPT_URL, req->url);
    curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
    curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    if (c->on_send) {
        curl_easy_setopt(c->easy, CURLOPT_PREREQFUNCTION, prereq_cb);
        curl_easy_setopt(c->easy, CURLOPT_PREREQDATA, c);
    }
    curl_easy_setopt(c->easy, CURLOPT_USERAGENT, "hookq/" HQ_VERSION);
    if (req->timeout_ms > 0)
        curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
    if (req->body) {
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)req->body_len);
        curl_easy_setopt(c->easy, CURLOPT_COPYPOSTFIELDS, req->body);
    }
    if (req->method && strcmp(req->method, "GET") != 0 &&
        !(req->body && strcmp(req->method, "POST") == 0))
        curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, req->method);
    c->started_ns = hq__mono_ns();

    c->next = h->calls;
    if (h->calls)
        h->calls->prev = c;
    h->calls = c;
    h->ncalls++;
    mc = curl_multi_add_handle(h->multi, c->easy);
    if (mc != CURLM_OK) {
        call_unlink(c);
        hq__err_set(err, HQ_ENOMEM, "cannot start http call: %s",
                    curl_multi_strerror(mc));
        call_free(c);
        return HQ_ENOMEM;
    }
    if (out)
        *out = c;
    return HQ_OK;
nomem:
    if (c->easy)
        curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->headers);
    free(c);
    return hq__err_set(err, HQ_ENOMEM, "out of memory");
}

void
hq__http_cancel(struct hq__http_call *c)
{
    if (!c)
        return;
    call_unlink(c);
    call_free(c);
}
