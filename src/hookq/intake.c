/*
 * The intake server: `POST <intake.path>` of DESIGN §3.3 (see intake.h and
 * docs/intake.md).
 *
 * DESIGN: a small HTTP/1.1 server on libevent bufferevents. We do not use
 * evhttp: in libevent 2.1 it answers an oversized body or header block with
 * its own HTML 413 (we owe a JSON 413, and 431 for headers), it has no
 * deadline for a whole header block (its timeout is per read, so a client
 * trickling one byte at a time holds a connection forever), no connection
 * limit, and it accepts Content-Length values such as "+5".
 *
 * intake.threads loops each run an evconnlistener on the one listening
 * socket, so the kernel hands each connection to whichever loop accepts it.
 * A connection lives on one loop. Each loop owns one async Redis connection
 * (src/lib/conn.c) and one batched pusher on it (src/lib/pusher.c): the
 * requests complete in one pass of the loop are stored together, in one
 * enqueue call per shard, and with [redis] wait_replicas answered only
 * after WAIT. A request is answered 202/200/429 only from the script's
 * reply (G5, G9, G10); this file turns the pusher's outcomes into answers.
 *
 * A connection handles one request at a time: while a request waits for
 * Redis, reading stops, and pipelined requests stay in the input buffer until
 * the answer is written. Deadlines, one timer per connection:
 *   - a request's header block must be complete within header_timeout of its
 *     first byte (or of the accept), and its body within header_timeout of
 *     the end of the headers: slow clients are cut off;
 *   - between requests, a keep-alive connection may idle for idle_timeout;
 *   - Redis must answer within REDIS_TIMEOUT_MS, else 503 and the Redis
 *     connection is dropped and made again (see docs/intake.md for why a 503
 *     may still mean "stored").
 * A response that closes the connection is followed by a lingering close:
 * shut down our side, then read and discard for LINGER_MS, so the client
 * sees the answer instead of a reset while it is still sending a body.
 *
 * Threads: everything about a connection, and its loop's Redis connection,
 * is touched only by that loop's thread. Shared across loops: the config
 * (read-only), the connection count and the counters (atomics).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <hiredis/async.h>

#include "clock_int.h"
#include "envelope_int.h"
#include "intake.h"
#include "metrics_int.h"
#include "signature_int.h"
#include "http1_int.h"
#include "pusher_int.h"
#include "quietlog_int.h"
#include "utf8_int.h"

#define REDIS_TIMEOUT_MS 1500   /* a request's enqueue must answer within */
#define LINGER_MS 2000          /* read and discard after a closing answer */
#define STOP_GRACE_MS 3000      /* hk_intake_stop waits this long at most */
#define OUT_CAP (256 * 1024)    /* stop reading while this much is unsent */
#define RETRY_AFTER_503 "1"
#define RETRY_AFTER_429 "10"

enum conn_state {
    ST_IDLE,    /* between requests, no byte of the next one yet */
    ST_HEADERS, /* reading a header block */
    ST_BODY,    /* reading the body */
    ST_STORE,   /* waiting for Redis */
    ST_CLOSING, /* answer written, waiting for it to leave, then linger */
    ST_LINGER,  /* our side shut down, discarding input until EOF or timer */
};

struct loop;

struct conn {
    struct loop *lp;
    struct bufferevent *bev;
    struct event *timer;
    struct conn *prev, *next; /* lp->conns */
    enum conn_state state;
    int keep_alive;           /* answer without "Connection: close" */
    int paused;               /* reading stopped: OUT_CAP reached */
    int first;                /* no request seen yet on this connection */
    int flushed;              /* ST_CLOSING: the answer has left already */
    int is_head;              /* the request is a HEAD: no body in answers */

    /* The request being read; reset by req_reset(). */
    struct hq__http1 req;     /* its bytes, parsed (src/lib/http1.c) */
    struct hq__envelope env;
    struct hq__push_slot pend; /* where it waits for Redis (ST_STORE) */
    int64_t t0_us;            /* when the request was complete; 0: not yet */
};

struct loop {
    struct hk_intake *in;
    unsigned idx;
    pthread_t thread;
    int started;
    struct event_base *base;
    struct evconnlistener *lis;
    struct event *stop_ev;     /* activated by hk_intake_stop */
    struct event *grace_ev;    /* STOP_GRACE_MS after the stop */
    struct evbuffer *msg;      /* scratch: the answer being written */
    struct hq__pusher *pusher; /* batches the requests' enqueue calls */
    struct hq__conn redis;     /* the loop's, shared by its requests */
    int redis_logged_down;     /* the outage has been logged */
    int redis_was_up;          /* connected once: loop 0 says so the first time */
    struct conn *conns;
    unsigned nconns;
    int stopping;
    int finished;
    _Atomic uint64_t accepted, duplicate;
    _Atomic uint64_t rejected[HQ_INTAKE_NREASONS];
    _Atomic int redis_oom;     /* Redis's last answer: refused for memory */
    struct hq__hist latency;    /* request complete -> answer written */
};

struct hk_intake {
    const struct hq__config *cfg;
    const char *path;          /* intake.path, "/webhook" when unset */
    struct hq__store_addr addr;
    struct hq__store_ns ns;
    struct hk_intake_hooks hooks;
    const struct hq__customer_spec *customer; /* cfg's, parsed */
    const struct hq__sig_key *key; /* cfg's intake.secret; NULL = none */
    struct hq__http1_config http1; /* limits, and the customer header */
    char max_depth[32];        /* for the 429's detail */
    struct hq__pusher_options push;
    struct timeval header_tv, idle_tv, redis_tv, linger_tv, write_tv;
    int fd;
    int port;
    unsigned nloops;
    struct loop *loops;
    struct hq__quietlog quiet; /* Redis failures, shared by the loops */
    _Atomic unsigned nconns;
    int stopped;
};

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;

static void process(struct conn *c);
static void conn_free(struct conn *c);
static void check_finished(struct loop *lp);
static void linger(struct conn *c);

/* ------------------------------------------------------------------------ */
/* Small helpers.                                                            */

/* Log through the intake's hook, at `level` (hookq.h's HQ_LOG_*) and up to
 * hooks.log_level. */
#define say(in, level, ...)                                                    \
    do {                                                                       \
        if ((level) <= (in)->hooks.log_level)                                 \
            hq__logf((in)->hooks.log, (in)->hooks.arg, level, __VA_ARGS__);    \
    } while (0)

/*
 * Log a Redis failure `msg` at WARN, unless the same one was logged less
 * than HQ_QUIETLOG_EVERY_MS ago (by any loop): a master that stays down
 * fails every retry. Returns 1 when it was logged.
 */
static int
say_failure(struct hk_intake *in, const char *msg)
{
    unsigned long quiet;

    if (!hq__quietlog_fail(&in->quiet, msg, 0, hq__mono_ms(), &quiet))
        return 0;
    if (quiet)
        say(in, HQ_LOG_WARN, "%s (%lu more not logged)", msg, quiet);
    else
        say(in, HQ_LOG_WARN, "%s", msg);
    return 1;
}

static struct timeval
ms_tv(int64_t ms)
{
    struct timeval tv;

    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

static void
count(struct loop *lp, int reason)
{
    atomic_fetch_add_explicit(&lp->rejected[reason], 1, memory_order_relaxed);
}

/*
 * Append `s` as the inside of a JSON string. A customer taken from a header
 * may hold bytes that are not UTF-8: each becomes \ufffd, so that the answer
 * stays valid JSON.
 */
static void
json_str(struct evbuffer *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[6];

        if (ch >= 0x80) {
            size_t k = hq__utf8_seq((const unsigned char *)s + i, n - i);

            if (k > 0) {
                i += k - 1;
                continue;
            }
            evbuffer_add(out, s + run, i - run);
            run = i + 1;
            evbuffer_add(out, "\\ufffd", 6);
            continue;
        }
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        evbuffer_add(out, s + run, i - run);
        run = i + 1;
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            evbuffer_add(out, esc, 2);
        } else {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            evbuffer_add(out, esc, 6);
        }
    }
    evbuffer_add(out, s + run, n - run);
}

/* ------------------------------------------------------------------------ */
/* Answers.                                                                  */

static const char *
status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    }
    return "Error";
}

static void
req_reset(struct conn *c)
{
    c->is_head = 0;
    c->t0_us = 0;
    hq__http1_reset(&c->req);
    hq__envelope_release(&c->env);
}

/*
 * Write one answer: `status`, a JSON `body` (already complete), and the
 * extra header lines in `extra` ("Name: value\r\n..." or NULL). Then either
 * wait for the next request (keep-alive) or close after the answer left.
 */
static void
send_answer(struct conn *c, int status, const char *extra,
            struct evbuffer *body)
{
    struct hk_intake *in = c->lp->in;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    struct evbuffer *msg = c->lp->msg;
    size_t len = evbuffer_get_length(body);

    if (c->lp->stopping)
        c->keep_alive = 0;
    if (in->hooks.log != NULL && in->hooks.log_level >= HQ_LOG_DEBUG)
        say(in, HQ_LOG_DEBUG, "intake: %d %.*s", status,
            (int)(len > 200 ? 200 : len),
            len ? (const char *)evbuffer_pullup(body, -1) : "");
    evbuffer_add_printf(msg,
                        "HTTP/1.1 %d %s\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: %zu\r\n"
                        "%s%s\r\n",
                        status, status_text(status), len, extra ? extra : "",
                        c->keep_alive ? "" : "Connection: close\r\n");
    if (!c->is_head)
        evbuffer_add_buffer(msg, body);
    else
        evbuffer_drain(body, len);
    /*
     * Write at once when nothing is queued before it: one syscall, and no
     * write event to arm and disarm (two epoll_ctl) per answer.
     */
    if (evbuffer_get_length(out) == 0)
        evbuffer_write(msg, bufferevent_getfd(c->bev));
    if (evbuffer_get_length(msg) > 0)
        bufferevent_write_buffer(c->bev, msg);

    if (c->t0_us != 0)
        hq__hist_observe(&c->lp->latency, hq__mono_us() - c->t0_us);
    req_reset(c);
    if (c->keep_alive) {
        c->state = ST_IDLE;
        evtimer_add(c->timer, &in->idle_tv);
        if (evbuffer_get_length(out) > OUT_CAP) {
            c->paused = 1;
            bufferevent_disable(c->bev, EV_READ);
        }
    } else {
        c->state = ST_CLOSING;
        bufferevent_disable(c->bev, EV_READ);
        evtimer_add(c->timer, &in->write_tv);
        if (evbuffer_get_length(out) == 0)
            c->flushed = 1; /* process() or the caller starts the linger */
    }
}

/* An error answer {"error": name, "detail": detail}. */
static void
send_error(struct conn *c, int status, int reason, const char *name,
           const char *detail, const char *extra)
{
    struct evbuffer *body = evbuffer_new();

    count(c->lp, reason);
    evbuffer_add_printf(body, "{\"error\":\"%s\",\"detail\":\"", name);
    json_str(body, detail, strlen(detail));
    evbuffer_add(body, "\"}", 2);
    send_answer(c, status, extra, body);
    evbuffer_free(body);
}

/* An answer before the body was read: the connection cannot be reused. */
static void
send_error_close(struct conn *c, int status, int reason, const char *name,
                 const char *detail, const char *extra)
{
    c->keep_alive = 0;
    send_error(c, status, reason, name, detail, extra);
}

/* ------------------------------------------------------------------------ */
/* Storing: the enqueue script.                                              */

/* Request `c` got its script reply: an enum hq_push_status, id, seq. */
static void
answer_stored(struct conn *c, int status, const char *id, size_t id_len,
              long long seq)
{
    struct loop *lp = c->lp;
    struct evbuffer *body = evbuffer_new();

    if (body == NULL) {
        send_error(c, 503, HQ_INTAKE_REDIS_UNAVAILABLE, "redis_unavailable",
                   "out of memory", "Retry-After: " RETRY_AFTER_503 "\r\n");
        return;
    }
    if (status == HQ_PUSH_STORED) {
        atomic_fetch_add_explicit(&lp->accepted, 1, memory_order_relaxed);
        evbuffer_add(body, "{\"id\":\"", 7);
        json_str(body, id, id_len);
        evbuffer_add(body, "\",\"key\":\"", 9);
        json_str(body, c->env.customer, c->env.customer_len);
        evbuffer_add(body, ":", 1);
        json_str(body, c->env.code, c->env.code_len);
        evbuffer_add_printf(body, "\",\"seq\":%lld}", seq);
        send_answer(c, 202, NULL, body);
    } else if (status == HQ_PUSH_DUPLICATE) {
        atomic_fetch_add_explicit(&lp->duplicate, 1, memory_order_relaxed);
        evbuffer_add(body, "{\"id\":\"", 7);
        json_str(body, id, id_len);
        evbuffer_add(body, "\",\"duplicate\":true}", 19);
        send_answer(c, 200, NULL, body);
    } else {
        char detail[160];

        snprintf(detail, sizeof(detail), "the key holds %s jobs already",
                 lp->in->max_depth);
        send_error(c, 429, HQ_INTAKE_KEY_FULL, "key_full", detail,
                   "Retry-After: " RETRY_AFTER_429 "\r\n");
    }
    evbuffer_free(body);
}

/* The pusher's answer for request `c`. */
static void
on_pushed(void *req, enum hq__push_outcome outcome,
          const struct hq_push_result *res, const char *detail, void *arg)
{
    struct conn *c = req;

    (void)arg;
    evtimer_del(c->timer); /* its Redis deadline */
    /* Redis over its maxmemory refuses the enqueue: /healthz says so. */
    if (outcome != HQ_PUSH_NOT_REPLICATED)
        atomic_store_explicit(&c->lp->redis_oom,
                              outcome == HQ_PUSH_FAILED && detail != NULL &&
                                  strstr(detail, "an error: OOM ") != NULL,
                              memory_order_relaxed);
    switch (outcome) {
    case HQ_PUSH_ANSWERED:
        answer_stored(c, res->status, res->id, strlen(res->id), res->seq);
        break;
    case HQ_PUSH_FAILED:
        send_error(c, 503, HQ_INTAKE_REDIS_UNAVAILABLE, "redis_unavailable",
                   detail, "Retry-After: " RETRY_AFTER_503 "\r\n");
        break;
    case HQ_PUSH_NOT_REPLICATED:
        send_error(c, 503, HQ_INTAKE_NOT_REPLICATED, "not_replicated", detail,
                   "Retry-After: " RETRY_AFTER_503 "\r\n");
        break;
    }
    /* Pipelined requests may be waiting in the input buffer. */
    process(c);
}

static void
on_push_batch_done(void *arg)
{
    check_finished(arg);
}

static void
on_push_warn(const char *msg, void *arg)
{
    struct loop *lp = arg;
    char line[HQ_QUIETLOG_SUBJECT_MAX];

    snprintf(line, sizeof(line), "intake: %s", msg);
    say_failure(lp->in, line);
}

/*
 * Queue request `c` for Redis: it joins its shard's open batch, which the
 * pusher sends at the end of this loop pass (or at once when full).
 */
static void
store(struct conn *c)
{
    struct loop *lp = c->lp;
    struct hq_push job = {
        .customer = c->env.customer, .customer_len = c->env.customer_len,
        .code = c->env.code, .code_len = c->env.code_len,
        .body = c->req.body, .body_len = c->req.body_len,
        .webhook_id = c->req.wh_id, .webhook_id_len = c->req.wh_id_len,
    };
    int rc;

    c->state = ST_STORE;
    /* Reading goes on (bounded by the read watermark): process() leaves
     * pipelined bytes in the input until the answer is written. */
    evtimer_add(c->timer, &lp->in->redis_tv);
    rc = hq__pusher_add(lp->pusher, &job, c, &c->pend);
    if (rc != HQ_OK) {
        evtimer_del(c->timer);
        send_error(c, 503, HQ_INTAKE_REDIS_UNAVAILABLE, "redis_unavailable",
                   rc == HQ_ESTORE ? "redis is unreachable; reconnecting"
                                   : "out of memory",
                   "Retry-After: " RETRY_AFTER_503 "\r\n");
    }
}

/* The whole request is here: check it, then store it. */
static void
handle_request(struct conn *c)
{
    struct hk_intake *in = c->lp->in;
    char detail[HQ_ENV_DETAIL_MAX];
    int rc;

    evtimer_del(c->timer);
    c->t0_us = hq__mono_us();
    if (in->key != NULL) {
        rc = hq__sig_verify(in->key, c->req.wh_id, c->req.wh_id_len, c->req.wh_ts,
                            c->req.wh_ts_len, c->req.wh_sig, c->req.wh_sig_len,
                            c->req.body ? c->req.body : "", c->req.body_len,
                            (int64_t)time(NULL));
        if (rc != HQ_SIG_OK) {
            send_error(c, 401, HQ_INTAKE_BAD_SIGNATURE, "bad_signature",
                       hq__sig_result_text(rc), NULL);
            return;
        }
    }
    rc = hq__envelope_parse(in->customer, c->req.body ? c->req.body : "", c->req.body_len,
                            c->req.extra, c->req.extra_len, &c->env, detail,
                            sizeof(detail));
    if (rc != HQ_ENV_OK) {
        static const int reasons[] = {
            [HQ_ENV_INVALID_JSON] = HQ_INTAKE_INVALID_JSON,
            [HQ_ENV_MISSING_CODE] = HQ_INTAKE_MISSING_CODE,
            [HQ_ENV_MISSING_DATA] = HQ_INTAKE_MISSING_DATA,
            [HQ_ENV_MISSING_CUSTOMER] = HQ_INTAKE_MISSING_CUSTOMER,
        };

        if (rc == HQ_ENV_NOMEM) {
            send_error(c, 503, HQ_INTAKE_REDIS_UNAVAILABLE, "out_of_memory",
                       "out of memory", "Retry-After: " RETRY_AFTER_503 "\r\n");
            return;
        }
        send_error(c, 400, reasons[rc], hq__env_result_name(rc), detail, NULL);
        return;
    }
    if (hq__config_event(in->cfg, c->env.code, c->env.code_len) == NULL) {
        char d[200];

        snprintf(d, sizeof(d), "no [event %.150s] section in the configuration",
                 c->env.code);
        send_error(c, 422, HQ_INTAKE_UNKNOWN_CODE, "unknown_code", d, NULL);
        return;
    }
    store(c);
}

/* ------------------------------------------------------------------------ */
/* Reading: src/lib/http1.c parses, this routes and answers.                 */

/* The reader's answer to an unreadable request (the connection closes). */
static void
send_unreadable(struct conn *c, const struct hq__http1_error *e)
{
    static const int reasons[] = {
        [HQ_HTTP1_BAD_REQUEST] = HQ_INTAKE_BAD_REQUEST,
        [HQ_HTTP1_HEADER_TOO_LARGE] = HQ_INTAKE_HEADER_TOO_LARGE,
        [HQ_HTTP1_BODY_TOO_LARGE] = HQ_INTAKE_BODY_TOO_LARGE,
    };

    if (e->failure == HQ_HTTP1_NO_MEMORY) {
        conn_free(c);
        return;
    }
    send_error_close(c, e->status, reasons[e->failure], e->name, e->detail, NULL);
}

/*
 * The header block is read: route (path, then method), then let the body
 * come. Returns 0, or answers the request (and returns -1).
 */
static int
route(struct conn *c)
{
    struct hk_intake *in = c->lp->in;
    struct hq__http1 *r = &c->req;
    struct hq__http1_error e;
    int send_continue;

    c->keep_alive = r->keep_alive;
    c->is_head = r->method == HQ_HTTP1_HEAD_METHOD;
    if (strcmp(r->path, in->path) != 0) {
        if (hq__http1_has_body(r))
            c->keep_alive = 0;
        send_error(c, 404, HQ_INTAKE_NOT_FOUND, "not_found",
                   "no such path; webhooks go to POST the intake path", NULL);
        return -1;
    }
    if (r->method != HQ_HTTP1_POST) {
        if (hq__http1_has_body(r))
            c->keep_alive = 0;
        if (r->method == HQ_HTTP1_UNKNOWN)
            send_error(c, 501, HQ_INTAKE_METHOD, "method_not_allowed",
                       "unknown method; use POST", "Allow: POST\r\n");
        else
            send_error(c, 405, HQ_INTAKE_METHOD, "method_not_allowed",
                       "use POST", "Allow: POST\r\n");
        return -1;
    }
    if (hq__http1_body_start(r, &send_continue, &e) != 0) {
        send_unreadable(c, &e);
        return -1;
    }
    if (send_continue && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
        bufferevent_write(c->bev, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

/* Feed the input to the request's reader until it stops; drain what it
 * took. */
static enum hq__http1_result
feed(struct conn *c, struct evbuffer *inb, struct hq__http1_error *e)
{
    for (;;) {
        struct evbuffer_iovec v;
        size_t used = 0;
        int n = evbuffer_peek(inb, -1, NULL, &v, 1);
        enum hq__http1_result r =
            hq__http1_feed(&c->req, n > 0 ? v.iov_base : "", n > 0 ? v.iov_len : 0,
                           &used, e);

        evbuffer_drain(inb, used);
        if (r != HQ_HTTP1_MORE || evbuffer_get_length(inb) == 0)
            return r;
    }
}

/* Read and handle as many requests as the input holds. */
static void
process(struct conn *c)
{
    struct hk_intake *in = c->lp->in;
    struct evbuffer *inb = bufferevent_get_input(c->bev);
    struct hq__http1_error e;
    enum hq__http1_result r;

    for (;;) {
        switch (c->state) {
        case ST_IDLE:
            if (evbuffer_get_length(inb) == 0)
                return;
            c->state = ST_HEADERS;
            if (!c->first)
                evtimer_add(c->timer, &in->header_tv);
            c->first = 0;
            /* fall through */
        case ST_HEADERS:
        case ST_BODY:
            r = feed(c, inb, &e);
            if (r == HQ_HTTP1_MORE)
                return;
            if (r == HQ_HTTP1_ERROR) {
                send_unreadable(c, &e);
                if (e.failure == HQ_HTTP1_NO_MEMORY)
                    return; /* freed */
                continue;
            }
            if (r == HQ_HTTP1_HEAD) {
                if (route(c) != 0)
                    continue;
                c->state = ST_BODY;
                evtimer_add(c->timer, &in->header_tv);
                break;
            }
            handle_request(c);
            break;
        case ST_STORE:
            return;
        case ST_CLOSING:
            if (!c->flushed)
                return;
            linger(c);
            /* fall through */
        case ST_LINGER:
            evbuffer_drain(inb, evbuffer_get_length(inb));
            return;
        }
        if (c->paused)
            return;
    }
}

/* ------------------------------------------------------------------------ */
/* Connections.                                                              */

static void
conn_free(struct conn *c)
{
    struct loop *lp = c->lp;

    hq__pusher_cancel(&c->pend); /* its reply finds no one to answer */
    if (c->prev)
        c->prev->next = c->next;
    else
        lp->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    lp->nconns--;
    atomic_fetch_sub_explicit(&lp->in->nconns, 1, memory_order_relaxed);
    event_free(c->timer);
    bufferevent_free(c->bev);
    hq__envelope_release(&c->env);
    hq__http1_release(&c->req);
    free(c);
    check_finished(lp);
}

/* The closing answer left: shut our side, then discard what still comes. */
static void
linger(struct conn *c)
{
    c->flushed = 0;
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    c->state = ST_LINGER;
    evtimer_add(c->timer, &c->lp->in->linger_tv);
    bufferevent_enable(c->bev, EV_READ);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process(arg);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;

    if (c->state == ST_CLOSING) {
        linger(c);
        process(c);
    } else if (c->paused) {
        c->paused = 0;
        if (c->state == ST_IDLE || c->state == ST_HEADERS || c->state == ST_BODY)
            bufferevent_enable(bev, EV_READ);
        process(c);
    }
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;

    (void)bev;
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
        c->state != ST_LINGER && c->state != ST_CLOSING &&
        evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        /* The client is done sending; let our last answer leave first. */
        c->keep_alive = 0;
        c->state = ST_CLOSING;
        bufferevent_disable(bev, EV_READ);
        return;
    }
    if ((what & BEV_EVENT_EOF) && c->state == ST_STORE) {
        c->keep_alive = 0;
        bufferevent_disable(bev, EV_READ);
        return;
    }
    conn_free(c);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct loop *lp = c->lp;

    (void)fd;
    (void)what;
    switch (c->state) {
    case ST_IDLE:
        if (c->first)
            count(lp, HQ_INTAKE_TIMEOUT);
        conn_free(c);
        return;
    case ST_HEADERS:
    case ST_BODY:
        count(lp, HQ_INTAKE_TIMEOUT);
        say(lp->in, HQ_LOG_DEBUG, "intake: request too slow, connection closed");
        conn_free(c);
        return;
    case ST_STORE: {
        /* Redis is too slow or gone: answer, then start a new connection
         * to the server of the request's shard (on a cluster, that master
         * alone: a hung master's calls fail, and the map is read again). */
        unsigned shard = hq__store_shard_of(&lp->in->ns, c->env.customer,
                                            c->env.customer_len);

        hq__pusher_cancel(&c->pend);
        send_error(c, 503, HQ_INTAKE_REDIS_UNAVAILABLE, "redis_unavailable",
                   "redis did not answer in time; the job may or may not be "
                   "stored: retry with the same webhook-id",
                   "Retry-After: " RETRY_AFTER_503 "\r\n");
        if (lp->redis.ac != NULL || lp->redis.router != NULL) {
            char why[96];

            snprintf(why, sizeof(why),
                     "shard %u: redis did not answer within %d ms",
                     shard, REDIS_TIMEOUT_MS);
            /* Pending requests get NULL replies: 503. */
            hq__conn_reset_shard(&lp->redis, shard, why);
        }
        process(c);
        return;
    }
    case ST_CLOSING:
    case ST_LINGER:
        conn_free(c);
        return;
    }
}

static void
on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
          int salen, void *arg)
{
    struct loop *lp = arg;
    struct hk_intake *in = lp->in;
    struct conn *c;
    int one = 1;

    (void)lis;
    (void)sa;
    (void)salen;
    if (lp->stopping ||
        atomic_fetch_add_explicit(&in->nconns, 1, memory_order_relaxed) >=
            in->cfg->intake.max_connections) {
        if (!lp->stopping) {
            atomic_fetch_sub_explicit(&in->nconns, 1, memory_order_relaxed);
            count(lp, HQ_INTAKE_CONN_LIMIT);
            say(in, HQ_LOG_DEBUG, "intake: max_connections reached; "
                "connection refused");
        }
        evutil_closesocket(fd);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto fail;
    c->lp = lp;
    c->bev = bufferevent_socket_new(lp->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(lp->base, on_timer, c);
    if (c->bev == NULL || c->timer == NULL) {
        if (c->bev)
            bufferevent_free(c->bev);
        else
            evutil_closesocket(fd);
        if (c->timer)
            event_free(c->timer);
        free(c);
        atomic_fetch_sub_explicit(&in->nconns, 1, memory_order_relaxed);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->state = ST_IDLE;
    c->first = 1;
    hq__http1_init(&c->req, &in->http1);
    c->next = lp->conns;
    if (lp->conns)
        lp->conns->prev = c;
    lp->conns = c;
    lp->nconns++;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_set_timeouts(c->bev, NULL, &in->write_tv);
    bufferevent_setwatermark(c->bev, EV_READ, 0,
                             in->cfg->intake.max_header + in->cfg->intake.max_body +
                                 64 * 1024);
    bufferevent_enable(c->bev, EV_READ);
    /* The first request's headers must come within header_timeout. */
    evtimer_add(c->timer, &in->header_tv);
    return;
fail:
    atomic_fetch_sub_explicit(&in->nconns, 1, memory_order_relaxed);
    evutil_closesocket(fd);
}

/* ------------------------------------------------------------------------ */
/* Redis connection of a loop.                                               */

static void
on_redis_up(struct hq__conn *rc, void *arg)
{
    struct loop *lp = arg;

    (void)rc;
    /* On a cluster, `up` follows every read of the slot map: said again
     * only after an outage that was logged (see on_redis_down()). */
    if (lp->redis_logged_down || (lp->idx == 0 && !lp->redis_was_up))
        say(lp->in, HQ_LOG_INFO, "intake: loop %u connected to redis",
            lp->idx);
    lp->redis_logged_down = 0;
    lp->redis_was_up = 1;
}

static void
on_redis_down(struct hq__conn *rc, const char *why, void *arg)
{
    struct loop *lp = arg;
    char line[HQ_QUIETLOG_SUBJECT_MAX];

    (void)rc;
    if (lp->stopping || lp->redis_logged_down)
        return;
    snprintf(line, sizeof(line), "intake: %s; answering 503 and reconnecting",
             why);
    if (say_failure(lp->in, line))
        lp->redis_logged_down = 1;
}

/* ------------------------------------------------------------------------ */
/* Loops, start and stop.                                                    */

static void
finish(evutil_socket_t fd, short what, void *arg)
{
    struct loop *lp = arg;

    (void)fd;
    (void)what;
    while (lp->conns)
        conn_free(lp->conns);
    /* Calls in flight end (answering no one), then the batches not sent
     * yet go: their requests are gone with their connections. */
    hq__conn_release(&lp->redis);
    hq__pusher_free(lp->pusher);
    lp->pusher = NULL;
    event_base_loopexit(lp->base, NULL);
}

/* While stopping: once no connection and no Redis call is left, exit. */
static void
check_finished(struct loop *lp)
{
    if (!lp->stopping || lp->finished || lp->nconns > 0 ||
        (lp->pusher != NULL && hq__pusher_pending(lp->pusher) > 0))
        return;
    lp->finished = 1;
    /* Not from inside a hiredis callback: from the loop, at once. */
    struct timeval now = {0, 0};

    event_base_once(lp->base, -1, EV_TIMEOUT, finish, lp, &now);
}

static void
on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct loop *lp = arg;
    struct conn *c, *next;
    struct timeval grace = ms_tv(STOP_GRACE_MS);

    (void)fd;
    (void)what;
    lp->stopping = 1;
    evconnlistener_disable(lp->lis);
    hq__conn_no_reconnect(&lp->redis);
    for (c = lp->conns; c != NULL; c = next) {
        next = c->next;
        c->keep_alive = 0;
        if (c->state == ST_IDLE)
            conn_free(c);
    }
    evtimer_add(lp->grace_ev, &grace);
    check_finished(lp);
}

static void
on_grace(evutil_socket_t fd, short what, void *arg)
{
    struct loop *lp = arg;

    if (!lp->finished) {
        lp->finished = 1;
        finish(fd, what, arg);
    }
}

static void *
loop_main(void *arg)
{
    struct loop *lp = arg;

    hq__conn_start(&lp->redis);
    event_base_loop(lp->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void
use_pthreads(void)
{
    evthread_use_pthreads();
}

/* Bind and listen on [intake] listen. */
static int
listen_on(const struct hq__listen_addr *la, int *port, char *err, size_t errsize)
{
    const char *addr = la->text;
    char serv[8];
    struct addrinfo hints, *res = NULL;
    int fd = -1, one = 1, rc;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    snprintf(serv, sizeof(serv), "%d", la->port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(la->host, serv, &hints, &res);
    if (rc != 0) {
        snprintf(err, errsize, "intake listen '%s': %s", addr, gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(err, errsize, "cannot listen on '%s': %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void
loops_free(struct hk_intake *in)
{
    for (unsigned i = 0; i < in->nloops; i++) {
        struct loop *lp = &in->loops[i];

        if (lp->lis)
            evconnlistener_free(lp->lis);
        if (lp->stop_ev)
            event_free(lp->stop_ev);
        if (lp->grace_ev)
            event_free(lp->grace_ev);
        hq__conn_release(&lp->redis);
        hq__pusher_free(lp->pusher);
        if (lp->msg)
            evbuffer_free(lp->msg);
        if (lp->base)
            event_base_free(lp->base);
    }
    free(in->loops);
    in->loops = NULL;
}

struct hk_intake *
hk_intake_start(const struct hq__config *cfg, const struct hq_store_options *store,
                const struct hq__store_addr *addr,
                const struct hk_intake_hooks *hooks, char *err, size_t errsize)
{
    struct hk_intake *in;
    struct hq__err e;
    unsigned i;

    pthread_once(&evthread_once, use_pthreads);
    in = calloc(1, sizeof(*in));
    if (in == NULL || hq__quietlog_init(&in->quiet) != HQ_OK) {
        snprintf(err, errsize, "out of memory");
        free(in);
        return NULL;
    }
    in->cfg = cfg;
    in->path = cfg->intake.path;
    in->fd = -1;
    if (hooks)
        in->hooks = *hooks;
    in->addr = *addr;
    in->addr.timeout_ms = store && store->timeout_ms ? store->timeout_ms : 5000;
    hq__conn_probe_cluster(&in->addr);
    if (hq__store_ns_init(&in->ns, store && store->ns ? store->ns : cfg->redis.ns,
                          store && store->shards ? store->shards : cfg->redis.shards,
                          &e) != HQ_OK) {
        snprintf(err, errsize, "%s", e.msg);
        goto fail;
    }
    in->customer = &cfg->intake.customer;
    in->key = cfg->intake.secret;
    in->http1.max_header = cfg->intake.max_header;
    in->http1.max_body = cfg->intake.max_body;
    in->http1.extra_header = in->customer->from_header ? in->customer->name : NULL;
    snprintf(in->max_depth, sizeof(in->max_depth), "%lld",
             (long long)cfg->intake.max_key_depth);
    in->push.limits.max_key_depth = cfg->intake.max_key_depth;
    in->push.limits.dedup_ttl_ms = cfg->intake.dedup_ttl_ms;
    in->header_tv = ms_tv(cfg->intake.header_timeout_ms);
    in->idle_tv = ms_tv(cfg->intake.idle_timeout_ms);
    in->write_tv = in->header_tv;
    in->push.wait_replicas = cfg->redis.wait_replicas;
    in->push.wait_timeout_ms = cfg->redis.wait_timeout_ms;
    /* With WAIT, Redis answers a batch at most wait_timeout later. */
    in->redis_tv = ms_tv(REDIS_TIMEOUT_MS + (in->push.wait_replicas > 0
                                                 ? cfg->redis.wait_timeout_ms
                                                 : 0));
    in->linger_tv = ms_tv(LINGER_MS);

    in->fd = listen_on(&cfg->intake.listen, &in->port, err, errsize);
    if (in->fd < 0)
        goto fail;

    in->nloops = cfg->intake.threads;
    in->loops = calloc(in->nloops, sizeof(*in->loops));
    if (in->loops == NULL) {
        snprintf(err, errsize, "out of memory");
        goto fail;
    }
    for (i = 0; i < in->nloops; i++) {
        struct loop *lp = &in->loops[i];
        struct hq__conn_hooks rhooks = {on_redis_up, on_redis_down, lp};
        struct hq__pusher_hooks phooks = {on_pushed, on_push_batch_done,
                                          on_push_warn, lp};

        lp->in = in;
        lp->idx = i;
        lp->base = event_base_new();
        if (lp->base == NULL)
            goto nomem;
        lp->lis = evconnlistener_new(lp->base, on_accept, lp, LEV_OPT_CLOSE_ON_EXEC,
                                     0, in->fd);
        lp->stop_ev = event_new(lp->base, -1, 0, on_stop, lp);
        lp->grace_ev = evtimer_new(lp->base, on_grace, lp);
        lp->msg = evbuffer_new();
        if (lp->msg == NULL || lp->lis == NULL || lp->stop_ev == NULL || lp->grace_ev == NULL ||
            hq__conn_init(&lp->redis, lp->base, &in->addr, &in->ns, &rhooks, 0) != HQ_OK ||
            hq__pusher_new(lp->base, &lp->redis, &in->ns, &in->push, &phooks,
                           &lp->pusher) != HQ_OK)
            goto nomem;
    }
    for (i = 0; i < in->nloops; i++) {
        if (pthread_create(&in->loops[i].thread, NULL, loop_main, &in->loops[i]) != 0) {
            snprintf(err, errsize, "cannot start an intake thread");
            in->nloops = i;
            hk_intake_stop(in);
            hk_intake_free(in);
            return NULL;
        }
        in->loops[i].started = 1;
    }
    say(in, HQ_LOG_INFO, "intake: listening on %s (port %d), %u loops, path %s%s",
        cfg->intake.listen.text, in->port, in->nloops, in->path,
        in->key != NULL ? ", signatures required" : "");
    return in;
nomem:
    snprintf(err, errsize, "out of memory");
fail:
    loops_free(in);
    if (in->fd >= 0)
        close(in->fd);
    hq__quietlog_release(&in->quiet);
    free(in);
    return NULL;
}

int
hk_intake_port(const struct hk_intake *in)
{
    return in->port;
}

void
hk_intake_stop(struct hk_intake *in)
{
    if (in == NULL || in->stopped)
        return;
    in->stopped = 1;
    for (unsigned i = 0; i < in->nloops; i++)
        if (in->loops[i].started)
            event_active(in->loops[i].stop_ev, EV_READ, 0);
    for (unsigned i = 0; i < in->nloops; i++)
        if (in->loops[i].started)
            pthread_join(in->loops[i].thread, NULL);
}

void
hk_intake_free(struct hk_intake *in)
{
    if (in == NULL)
        return;
    hk_intake_stop(in);
    loops_free(in);
    if (in->fd >= 0)
        close(in->fd);
    hq__quietlog_release(&in->quiet);
    free(in);
}

void
hk_intake_stats(const struct hk_intake *in, struct hk_intake_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < in->nloops; i++) {
        struct loop *lp = &in->loops[i];

        out->accepted += atomic_load_explicit(&lp->accepted, memory_order_relaxed);
        out->duplicate += atomic_load_explicit(&lp->duplicate, memory_order_relaxed);
        for (int r = 0; r < HQ_INTAKE_NREASONS; r++)
            out->rejected[r] += atomic_load_explicit(&lp->rejected[r],
                                                     memory_order_relaxed);
        out->redis_oom |= atomic_load_explicit(&lp->redis_oom, memory_order_relaxed);
    }
    out->connections = atomic_load_explicit(&in->nconns, memory_order_relaxed);
}

void
hk_intake_latency(const struct hk_intake *in, struct hq__hist_snap *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < in->nloops; i++)
        hq__hist_add(out, &in->loops[i].latency);
}

const char *
hk_intake_reason_name(int reason)
{
    static const char *const names[HQ_INTAKE_NREASONS] = {
        [HQ_INTAKE_BAD_REQUEST] = "bad_request",
        [HQ_INTAKE_INVALID_JSON] = "invalid_json",
        [HQ_INTAKE_MISSING_CODE] = "missing_code",
        [HQ_INTAKE_MISSING_DATA] = "missing_data",
        [HQ_INTAKE_MISSING_CUSTOMER] = "missing_customer",
        [HQ_INTAKE_BAD_SIGNATURE] = "bad_signature",
        [HQ_INTAKE_NOT_FOUND] = "not_found",
        [HQ_INTAKE_METHOD] = "method_not_allowed",
        [HQ_INTAKE_BODY_TOO_LARGE] = "body_too_large",
        [HQ_INTAKE_UNKNOWN_CODE] = "unknown_code",
        [HQ_INTAKE_KEY_FULL] = "key_full",
        [HQ_INTAKE_HEADER_TOO_LARGE] = "header_too_large",
        [HQ_INTAKE_REDIS_UNAVAILABLE] = "redis_unavailable",
        [HQ_INTAKE_TIMEOUT] = "timeout",
        [HQ_INTAKE_CONN_LIMIT] = "conn_limit",
        [HQ_INTAKE_NOT_REPLICATED] = "not_replicated",
    };

    if (reason < 0 || reason >= HQ_INTAKE_NREASONS)
        return "unknown";
    return names[reason];
}
