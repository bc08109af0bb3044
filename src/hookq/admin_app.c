/*
 * The admin routes an application calls: tokens and the shared rate
 * limiter (see admin_app.h).
 *
 * DESIGN: everything runs on the admin thread. Redis is asked through one
 * synchronous hq_client, as in admin_api.c: one EVALSHA per token write or
 * grant. A /api/limit that finds no budget and may wait becomes a `waiter`:
 * a timer on the admin loop that asks again when the budget is expected
 * (limit.lua's estimate, at least WAIT_STEP_MS apart) and at its deadline,
 * then answers. As a fetch's grant, one that opens within the look-ahead
 * (HQ_LIMIT_LOOKAHEAD_MS, and within wait_ms) is reserved for its moment
 * and answered then, so that a waiting application gets its share beside
 * hookq's jobs, which reserve theirs the same way. No thread waits, and other requests are served meanwhile.
 * A client that goes away while waiting takes its waiter along (the
 * connection's close callback).
 *
 * A grant is the same limit.lua decision as a fetch's, on the same sliding
 * log of (token, endpoint), and as a fetch's it is pending until it leaves:
 * here, until evhttp has written the 200 (its on-complete callback sends
 * limit.lua "sent"), which on a busy loop may be a while after the
 * decision.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "admin_app.h"
#include "client_int.h"
#include "common_int.h"
#include "limiter_int.h"
#include "metrics_int.h"

#include "banned_int.h"

#define APP_TIMEOUT_MS 2000
#define WAIT_MAX_MS 10000
#define WAIT_STEP_MS 5      /* asking again sooner than this is waste */
#define TOKEN_MAX HQ_TOKEN_MAX
#define CUSTOMER_MAX 1000
#define TOKENS_PREFIX "/api/tokens/"

struct waiter {
    struct hk_admin_app *app;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    struct event *timer;
    int64_t deadline_us;     /* monotonic */
    char *who;               /* the customer or the token */
    int by_token;
    int reserved;            /* granted for when the timer fires: */
    char grant_id[80];       /*   the grant, */
    char *token;             /*   its token and */
    int64_t at_ms;           /*   its moment, for hq__limit_grant_sent() */
    char endpoint[1024];
    struct waiter *prev, *next;
};

/* A grant reserved for later (ask()'s ASK_RESERVED). */
struct reservation {
    char id[80];
    char *token;             /* owned */
    int64_t at_ms;
};

/* A grant answered, its "sent" due once the answer is written. */
struct answered {
    struct hk_admin_app *app;
    char *who;               /* the customer, or NULL (a token's budget) */
    char *token;
    char endpoint[1024];
    char id[80];
    int64_t at_ms;
    struct answered *prev, *next;
};

struct hk_admin_app {
    const struct hq__config *cfg;
    hq_client *client;
    struct hq__limit_rate rate;
    struct waiter *waiters;
    struct answered *answered; /* answers being written */
    unsigned long long grants; /* for grant ids */
    long long started_us;
};

/* ------------------------------------------------------------------------ */
/* Answers.                                                                 */

static void
reply_redis_error(struct evhttp_request *req, struct hk_admin_app *app,
                  int rc)
{
    const char *msg = hq_client_errmsg(app->client);

    if (rc == HQ_ENOMEM) {
        hk_admin_reply_error(req, 500, "out_of_memory", msg);
    } else {
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "Retry-After", "1");
        hk_admin_reply_error(req, 503, "redis_unavailable", msg);
    }
}

static void
reply_no_content(struct evhttp_request *req)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control",
                      "no-store");
    evhttp_send_reply(req, 204, NULL, NULL);
}

/*
 * A customer or token: a non-empty string of at most `max` bytes without
 * control characters. NULL when it is one, else what is wrong.
 */
static const char *
bad_word(const char *s, size_t len, size_t max)
{
    if (len == 0)
        return "is empty";
    if (len > max)
        return "is too long";
    if (strlen(s) != len)
        return "contains a NUL";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return "contains a control character";
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* PUT / DELETE /api/tokens/CUSTOMER                                         */

static void
api_tokens(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    static const char *const allowed[] = {"token", NULL};
    struct hk_admin_app *app = arg;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *why;
    char *customer = NULL, msg[300];
    size_t clen = 0;
    json_t *body = NULL, *tok;
    int rc;

    (void)a;
    if (app->cfg->admin.token == NULL) {
        hk_admin_reply_error(req, 403, "admin_token_required",
                             "token writes need [admin] token set (and sent as "
                             "Authorization: Bearer)");
        return;
    }
    if (path != NULL && strlen(path) > strlen(TOKENS_PREFIX))
        customer = evhttp_uridecode(path + strlen(TOKENS_PREFIX), 0, &clen);
    if (customer == NULL ||
        (why = bad_word(customer, clen, CUSTOMER_MAX)) != NULL) {
        snprintf(msg, sizeof(msg), "the customer in the path %s",
                 customer == NULL ? "is empty" : why);
        hk_admin_reply_error(req, 400, "bad_customer", msg);
        goto out;
    }
    if (m == EVHTTP_REQ_DELETE) {
        rc = hq_client_token_del(app->client, customer);
        if (rc == HQ_OK)
            reply_no_content(req);
        else if (rc == HQ_ENOTFOUND)
            hk_admin_reply_error(req, 404, "not_found",
                                 hq_client_errmsg(app->client));
        else
            reply_redis_error(req, app, rc);
        goto out;
    }
    if (!(body = hk_admin_json_body(req, allowed)))
        goto out;
    tok = json_object_get(body, "token");
    if (!json_is_string(tok)) {
        hk_admin_reply_error(req, 400, tok ? "bad_token" : "missing_token",
                             tok ? "\"token\" must be a string"
                                 : "want {\"token\": \"...\"}");
        goto out;
    }
    why = bad_word(json_string_value(tok), json_string_length(tok), TOKEN_MAX);
    if (why != NULL) {
        snprintf(msg, sizeof(msg), "the token %s", why);
        hk_admin_reply_error(req, 400,
                             json_string_length(tok) == 0 ? "empty_token" : "bad_token",
                             msg);
        goto out;
    }
    rc = hq_client_token_set(app->client, customer, json_string_value(tok),
                             NULL);
    if (rc == HQ_OK)
        reply_no_content(req);
    else if (rc == HQ_EINVAL)
        hk_admin_reply_error(req, 400, "bad_token", hq_client_errmsg(app->client));
    else
        reply_redis_error(req, app, rc);
out:
    json_decref(body);
    free(customer);
}

/* ------------------------------------------------------------------------ */
/* POST /api/limit                                                           */

static void waiter_free(struct waiter *w);

static void
reply_refused(struct evhttp_request *req, int64_t retry_ms)
{
    char body[96], secs[24];

    if (retry_ms < 1)
        retry_ms = 1;
    snprintf(secs, sizeof(secs), "%lld", (long long)((retry_ms + 999) / 1000));
    snprintf(body, sizeof(body), "{\"granted\":false,\"retry_after_ms\":%lld}",
             (long long)retry_ms);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After",
                      secs);
    hk_admin_reply(req, 429, "application/json", body, strlen(body));
}

static void
answered_free(struct answered *an)
{
    if (an->prev)
        an->prev->next = an->next;
    else
        an->app->answered = an->next;
    if (an->next)
        an->next->prev = an->prev;
    free(an->who);
    free(an->token);
    free(an);
}

/* The 200 has been written: the call leaves now (limit.lua "sent"). */
static void
on_answer_written(struct evhttp_request *req, void *arg)
{
    struct answered *an = arg;

    (void)req;
    hq__limit_grant_sent(&an->app->client->conn, an->who, an->token,
                         an->endpoint, an->id, an->at_ms, &an->app->rate,
                         &an->app->client->err);
    answered_free(an);
}

/*
 * Answer a grant, and record when the answer was written: the evhttp loop
 * writes it after the callbacks already due, which under load may be a
 * while after the decision. Takes `token`. Without memory for that, the
 * grant stays pending in the log: counted as late as it may be, safe.
 */
static void
reply_granted(struct hk_admin_app *app, struct evhttp_request *req,
              const char *customer, const char *endpoint, const char *id,
              char *token, int64_t at_ms)
{
    static const char granted[] = "{\"granted\":true}";
    struct answered *an = calloc(1, sizeof(*an));

    if (an != NULL && token != NULL &&
        (customer == NULL || (an->who = strdup(customer)) != NULL)) {
        an->app = app;
        an->token = token;
        token = NULL;
        snprintf(an->endpoint, sizeof(an->endpoint), "%s", endpoint);
        snprintf(an->id, sizeof(an->id), "%s", id);
        an->at_ms = at_ms;
        an->next = app->answered;
        if (app->answered)
            app->answered->prev = an;
        app->answered = an;
        evhttp_request_set_on_complete_cb(req, on_answer_written, an);
    } else if (an != NULL) {
        free(an->who);
        free(an);
    }
    free(token);
    hk_admin_reply(req, 200, "application/json", granted, sizeof(granted) - 1);
}

enum { ASK_WAIT = 0, ASK_ANSWERED = 1, ASK_RESERVED = 2 };

/*
 * Ask once, for a grant now or within `lookahead_ms`. ASK_ANSWERED: `req`
 * has been answered. ASK_RESERVED: a grant is reserved for *delay_ms from
 * now; answer 200 then. ASK_WAIT: no budget yet (when `final`, the 429 has
 * been sent); *delay_ms says when it may be (always >= 1).
 */
static int
ask(struct hk_admin_app *app, struct evhttp_request *req, const char *who,
    int by_token, const char *endpoint, int64_t lookahead_ms, int final,
    int64_t *delay_ms, struct reservation *res)
{
    struct hq__limit_grant g;
    char msg[300];
    int rc;

    snprintf(res->id, sizeof(res->id), "api:%ld:%lld:%llu", (long)getpid(),
             app->started_us, ++app->grants);
    /* On the client's own connection: its errors read as the client's. */
    rc = hq__limit_grant(&app->client->conn, by_token ? NULL : who,
                         by_token ? who : NULL, endpoint, res->id, &app->rate,
                         lookahead_ms, &g, &app->client->err);
    if (rc != HQ_OK) {
        free(g.token);
        reply_redis_error(req, app, rc);
        return ASK_ANSWERED;
    }
    switch (g.verdict) {
    case HQ_LIMIT_GO:
        if (g.wait_ms > 0) {
            *delay_ms = g.wait_ms;
            res->token = g.token;
            res->at_ms = g.at_ms;
            return ASK_RESERVED;
        }
        reply_granted(app, req, by_token ? NULL : who, endpoint, res->id,
                      g.token, g.at_ms);
        return ASK_ANSWERED;
    case HQ_LIMIT_NO_TOKEN:
        snprintf(msg, sizeof(msg),
                 "customer '%.200s' has no token (hookq token set)", who);
        hk_admin_reply_error(req, 404, "no_token", msg);
        return ASK_ANSWERED;
    }
    *delay_ms = g.expect_ms > 0 ? g.expect_ms : 1;
    if (final) {
        reply_refused(req, *delay_ms);
        return ASK_ANSWERED;
    }
    return ASK_WAIT;
}

/* The look-ahead for a request that may wait `left_us` more. */
static int64_t
lookahead_for(int64_t left_us)
{
    if (left_us <= 0)
        return 0;
    return left_us / 1000 < HQ_LIMIT_LOOKAHEAD_MS ? left_us / 1000
                                                   : HQ_LIMIT_LOOKAHEAD_MS;
}

static void
waiter_unlink(struct waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        w->app->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
}

static void
waiter_free(struct waiter *w)
{
    waiter_unlink(w);
    if (w->conn)
        evhttp_connection_set_closecb(w->conn, NULL, NULL);
    if (w->timer)
        event_free(w->timer);
    free(w->who);
    free(w->token);
    free(w);
}

/* The client went away: its request goes with the connection. */
static void
on_client_closed(struct evhttp_connection *conn, void *arg)
{
    struct waiter *w = arg;

    (void)conn;
    w->conn = NULL;
    waiter_free(w);
}

static void
schedule(struct waiter *w, int64_t expect_ms)
{
    int64_t left_us = w->deadline_us - hq__mono_us(), d_us;
    struct timeval tv;

    /* A little early, as a parked job comes back: within the look-ahead,
     * where the grant is reserved on time. */
    if (expect_ms > HQ_LIMIT_EARLY_MS + WAIT_STEP_MS)
        expect_ms -= HQ_LIMIT_EARLY_MS;
    if (expect_ms < WAIT_STEP_MS)
        expect_ms = WAIT_STEP_MS;
    d_us = expect_ms * 1000;
    if (d_us > left_us)
        d_us = left_us > 0 ? left_us : 0;
    tv.tv_sec = (time_t)(d_us / 1000000);
    tv.tv_usec = (suseconds_t)(d_us % 1000000);
    evtimer_add(w->timer, &tv);
}

/* Answer at the reserved moment: exactly, not capped by the deadline. */
static void
schedule_exact(struct waiter *w, int64_t delay_ms, struct reservation *res)
{
    struct timeval tv;

    w->reserved = 1;
    snprintf(w->grant_id, sizeof(w->grant_id), "%s", res->id);
    free(w->token);
    w->token = res->token;
    res->token = NULL;
    w->at_ms = res->at_ms;
    tv.tv_sec = (time_t)(delay_ms / 1000);
    tv.tv_usec = (suseconds_t)(delay_ms % 1000) * 1000;
    evtimer_add(w->timer, &tv);
}

static void
on_wait_timer(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;
    int64_t delay = 1, left_us = w->deadline_us - hq__mono_us();
    struct reservation res = {{0}, NULL, 0};
    int r;

    (void)fd;
    (void)what;
    /* Once answered, the connection may go at any time: stop watching it. */
    if (w->conn)
        evhttp_connection_set_closecb(w->conn, NULL, NULL);
    if (w->reserved) {
        reply_granted(w->app, w->req, w->by_token ? NULL : w->who,
                      w->endpoint, w->grant_id, w->token, w->at_ms);
        w->token = NULL;
        r = ASK_ANSWERED;
    } else {
        r = ask(w->app, w->req, w->who, w->by_token, w->endpoint,
                lookahead_for(left_us), left_us <= 0, &delay, &res);
    }
    if (r == ASK_ANSWERED) {
        w->conn = NULL;
        waiter_free(w);
        return;
    }
    if (w->conn)
        evhttp_connection_set_closecb(w->conn, on_client_closed, w);
    if (r == ASK_RESERVED)
        schedule_exact(w, delay, &res);
    else
        schedule(w, delay);
}

static void
api_limit(struct hk_admin *a, struct evhttp_request *req, void *arg)
{
    static const char *const allowed[] = {"customer", "token", "endpoint",
                                          "wait_ms", NULL};
    struct hk_admin_app *app = arg;
    const struct hq__config *cfg = app->cfg;
    json_t *body, *cust, *tok, *ep, *wait;
    struct hq__err err = {{0}};
    struct waiter *w = NULL;
    char endpoint[1024], msg[400];
    const char *who, *why;
    json_int_t wait_ms = 0;
    int64_t delay = 1;
    struct reservation res = {{0}, NULL, 0};
    int r;

    if (!(body = hk_admin_json_body(req, allowed)))
        return;
    cust = json_object_get(body, "customer");
    tok = json_object_get(body, "token");
    ep = json_object_get(body, "endpoint");
    wait = json_object_get(body, "wait_ms");
    if ((cust != NULL) == (tok != NULL)) {
        hk_admin_reply_error(req, 400, "bad_request",
                             "give exactly one of \"customer\" and \"token\"");
        goto out;
    }
    if (!json_is_string(cust ? cust : tok)) {
        snprintf(msg, sizeof(msg), "\"%s\" must be a string",
                 cust ? "customer" : "token");
        hk_admin_reply_error(req, 400, cust ? "bad_customer" : "bad_token", msg);
        goto out;
    }
    who = json_string_value(cust ? cust : tok);
    why = bad_word(who, json_string_length(cust ? cust : tok),
                   cust ? CUSTOMER_MAX : TOKEN_MAX);
    if (why != NULL) {
        snprintf(msg, sizeof(msg), "the %s %s", cust ? "customer" : "token",
                 why);
        hk_admin_reply_error(req, 400,
                             json_string_length(cust ? cust : tok) == 0 && tok
                                 ? "empty_token"
                                 : cust ? "bad_customer" : "bad_token",
                             msg);
        goto out;
    }
    if (tok && cfg->redis.shards > 1) {
        hk_admin_reply_error(req, 400, "customer_required",
                             "with [redis] shards > 1 a budget lives in its customer's "
                             "shard: give \"customer\"");
        goto out;
    }
    if (!json_is_string(ep)) {
        hk_admin_reply_error(req, 400, "bad_endpoint",
                             ep ? "\"endpoint\" must be a string"
                                : "\"endpoint\" is missing (e.g. \"GET /posts/{}\")");
        goto out;
    }
    if (hq__limit_endpoint_norm(cfg->api.endpoint == HQ_ENDPOINT_ROUTE,
                                cfg->api.base_url.url,
                                json_string_value(ep), endpoint,
                                sizeof(endpoint), &err) != HQ_OK) {
        hk_admin_reply_error(req, 400, "bad_endpoint", err.msg);
        goto out;
    }
    if (wait != NULL) {
        if (!json_is_integer(wait) || json_integer_value(wait) < 0 ||
            json_integer_value(wait) > WAIT_MAX_MS) {
            hk_admin_reply_error(req, 400, "bad_wait_ms",
                                 "\"wait_ms\" must be an integer from 0 to 10000");
            goto out;
        }
        wait_ms = json_integer_value(wait);
    }
    r = ask(app, req, who, tok != NULL, endpoint,
            lookahead_for((int64_t)wait_ms * 1000), wait_ms == 0, &delay,
            &res);
    if (r == ASK_ANSWERED)
        goto out;

    /* No budget yet: wait on the loop. */
    w = calloc(1, sizeof(*w));
    if (w != NULL) {
        w->app = app;
        w->req = req;
        w->who = strdup(who);
        w->by_token = tok != NULL;
        snprintf(w->endpoint, sizeof(w->endpoint), "%s", endpoint);
        w->deadline_us = hq__mono_us() + (int64_t)wait_ms * 1000;
        w->timer = evtimer_new(hk_admin_base(a), on_wait_timer, w);
        w->next = app->waiters;
        if (app->waiters)
            app->waiters->prev = w;
        app->waiters = w;
    }
    if (w == NULL || w->who == NULL || w->timer == NULL) {
        if (w != NULL)
            waiter_free(w);
        /* Out of memory: never answer a reserved grant early (it stays
         * pending in the log, counted). */
        reply_refused(req, delay);
        goto out;
    }
    w->conn = evhttp_request_get_connection(req);
    if (w->conn)
        evhttp_connection_set_closecb(w->conn, on_client_closed, w);
    if (r == ASK_RESERVED)
        schedule_exact(w, delay, &res);
    else
        schedule(w, delay);
out:
    free(res.token);
    json_decref(body);
}

/* ------------------------------------------------------------------------ */

/* hk_admin_free()'s clean-up: answer nothing more and free. */
static void
app_free(void *arg)
{
    struct hk_admin_app *app = arg;

    while (app->waiters)
        waiter_free(app->waiters);
    while (app->answered)
        answered_free(app->answered);
    hq_client_free(app->client);
    free(app);
}

int
hk_admin_app_attach(struct hk_admin *a, const struct hq__config *cfg,
                    const struct hq_store_options *store, char *err,
                    size_t errsize)
{
    struct hk_admin_app *app = calloc(1, sizeof(*app));

    if (app == NULL || hk_admin_on_free(a, app_free, app) != 0) {
        free(app);
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    /* From here on, hk_admin_free() frees `app`. */
    app->cfg = cfg;
    app->started_us = (long long)hq__mono_us();
    app->rate.calls = cfg->api.rate_calls;
    app->rate.window_ms = cfg->api.rate_window_ms;
    app->rate.margin_ms = cfg->api.margin_ms;
    if (hk_admin_client_new(store, APP_TIMEOUT_MS, &app->client, err,
                            errsize) != 0)
        return -1;
    if (hk_admin_route(a, "/api/limit", HK_ADMIN_POST, api_limit, app) != 0 ||
        hk_admin_route_prefix(a, TOKENS_PREFIX, HK_ADMIN_PUT | HK_ADMIN_DELETE,
                              api_tokens, app) != 0) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    return 0;
}
