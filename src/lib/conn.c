/*
 * The Redis connection layer's asynchronous side: struct hq__conn, owned
 * by one libevent loop (see conn_int.h for the contract; the blocking side
 * is sconn.c).
 *
 * DESIGN: hiredis does the protocol; this file decides when to connect,
 * what to do when a connection fails, and how a script call is sent. An
 * asynchronous connection that fails (refused, lost, or dropped by its
 * owner's watchdog) is never repaired: hiredis frees it, the owner hears
 * `down` once, and a timer makes a new one after the backoff (the one
 * reconnect policy, hq__reconnect_backoff_ms() of clock_int.h). The owner's
 * callbacks of the calls in flight run with a NULL reply, in order, before
 * the reconnect can start, so nothing is answered twice.
 *
 * Scripts run by EVALSHA with the SHA1 computed once by store.c, so a call
 * costs one round trip and sends no script text. An asynchronous call keeps
 * a copy of its arguments until it is answered, so that a NOSCRIPT answer
 * can be sent again as EVAL on the same connection.
 *
 * A HQ_CONN_SUBSCRIBER conn asks the server, once connected and before it
 * subscribes to anything, whether it has sharded Pub/Sub (COMMAND INFO
 * SSUBSCRIBE); its owner hears `up` after the answer and subscribes with
 * SUBSCRIBE, plus SSUBSCRIBE where the server has it, so that it hears
 * the scripts' wake-ups whether they SPUBLISH (Redis 7) or PUBLISH (Redis
 * 6). On a cluster the router does the same per master (router.c, which
 * also says how hiredis 0.14 is made to pass `smessage` on).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/async.h>

#include "clock_int.h"
#include "cluster_int.h"
#include "redis_event_int.h"
#include "conn_int.h"
#include "scripts_int.h"

static void retry_cb(evutil_socket_t fd, short what, void *arg);

/* Sentinel: a node answered READONLY (a replica now) or LOADING: drop the
 * connection and ask the Sentinels again (hq__conn_reset() cannot run in
 * the reply's callback, hence this event). */
static void
stale_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hq__conn *c = arg;
    char why[400];

    (void)fd;
    (void)what;
    snprintf(why, sizeof(why),
             "redis at '%s:%d' is not a writable master now (READONLY or "
             "LOADING); asking the sentinels again",
             c->master_host, c->master_port);
    hq__conn_reset(c, why);
}

/* Called with every reply of `ac`: see stale_cb(). */
static void
check_stale(redisAsyncContext *ac, const redisReply *r)
{
    struct hq__conn *c = ac->data;
    struct hq__redirect rd;

    if (c == NULL || c->stale_ev == NULL || c->ac != ac || r == NULL ||
        r->type != REDIS_REPLY_ERROR)
        return;
    switch (hq__cluster_redirect_parse(r->str, r->len, &rd)) {
    case HQ_REDIRECT_READONLY:
    case HQ_REDIRECT_LOADING:
    case HQ_REDIRECT_MASTERDOWN:
        if (!evtimer_pending(c->stale_ev, NULL))
            event_active(c->stale_ev, EV_TIMEOUT, 1);
        break;
    default:
        break;
    }
}

int
hq__conn_init(struct hq__conn *c, struct event_base *base,
              const struct hq__store_addr *addr, const struct hq__store_ns *ns,
              const struct hq__conn_hooks *hooks, unsigned flags)
{
    memset(c, 0, sizeof(*c));
    c->base = base;
    c->addr = addr;
    c->ns = ns;
    if (hooks)
        c->hooks = *hooks;
    c->flags = flags;
    c->rng = hq__rng_seed(c);
    if (!(flags & HQ_CONN_ON_DEMAND)) {
        c->retry_ev = evtimer_new(base, retry_cb, c);
        if (c->retry_ev == NULL)
            return HQ_ENOMEM;
    }
    if (addr->nsentinels) {
        c->stale_ev = evtimer_new(base, stale_cb, c);
        if (c->stale_ev == NULL)
            return HQ_ENOMEM;
    }
    return HQ_OK;
}

static void
retry_later(struct hq__conn *c)
{
    int ms;
    struct timeval tv;

    if (c->closing || c->retry_ev == NULL)
        return;
    ms = hq__reconnect_backoff_ms(c->attempts, hq__rng_next(&c->rng));
    c->attempts++; /* hq__reconnect_backoff_ms() caps the delay */
    if (c->attempts > 16)
        c->attempts = 16;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(c->retry_ev, &tv);
}

static void
went_down(struct hq__conn *c, const char *why)
{
    c->up = 0;
    if (c->closing)
        return;
    if (c->hooks.down)
        c->hooks.down(c, why, c->hooks.arg);
    retry_later(c);
}

/*
 * Connection `ac` failed or ended: unless its owner dropped it already
 * (hq__conn_reset(), _release()), tell the owner and reconnect later.
 * hiredis frees `ac` after the callback returns.
 */
static void
ended(const redisAsyncContext *ac, const char *what, const char *detail)
{
    struct hq__conn *c = ac->data;
    char why[300];

    if (c == NULL || c->ac != ac)
        return;
    c->ac = NULL;
    snprintf(why, sizeof(why), "%s%s%s", what, detail ? ": " : "",
             detail ? detail : "");
    went_down(c, why);
}

/* HQ_CONN_SUBSCRIBER: COMMAND INFO SSUBSCRIBE is [[ssubscribe ...]] on
 * Redis 7.0, [nil] before; the owner hears `up` then. */
static void
probe_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    struct hq__conn *c = privdata;
    redisReply *r = reply_;

    if (r == NULL || c->ac != ac || c->closing)
        return;
    c->sharded = r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                 r->element[0]->type == REDIS_REPLY_ARRAY;
    c->up = 1;
    if (c->hooks.up)
        c->hooks.up(c, c->hooks.arg);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
    struct hq__conn *c = ac->data;

    if (status != REDIS_OK) {
        ended(ac, "cannot connect to redis", ac->errstr);
        return;
    }
    if (c == NULL || c->ac != ac)
        return;
    c->attempts = 0;
    if (c->flags & HQ_CONN_SUBSCRIBER) {
        /* Asked before SUBSCRIBE: a subscribed connection takes no COMMAND.
         * (It cannot fail on a connection just made.) */
        redisAsyncCommand(c->ac, probe_reply, c, "COMMAND INFO SSUBSCRIBE");
        return;
    }
    c->up = 1;
    if (c->hooks.up)
        c->hooks.up(c, c->hooks.arg);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    ended(ac, "lost the connection to redis",
          status == REDIS_OK ? NULL : ac->errstr);
}

static void
ignore_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    (void)r;
    (void)privdata;
}

static void
router_map(void *arg)
{
    struct hq__conn *c = arg;

    if (c->up || c->closing)
        return;
    c->up = 1;
    if (c->hooks.up)
        c->hooks.up(c, c->hooks.arg);
}

static void
router_node_down(const char *why, void *arg)
{
    struct hq__conn *c = arg;

    /* Until the map has been read again: `up` then. */
    c->up = 0;
    if (!c->closing && c->hooks.down)
        c->hooks.down(c, why, c->hooks.arg);
}

static int
routed(const struct hq__conn *c)
{
    return c->addr->cluster;
}

void
hq__conn_start(struct hq__conn *c)
{
    redisAsyncContext *ac;
    char name[300], why[400];
    const char *host = c->addr->host;
    int port = c->addr->port;

    if (c->ac != NULL || c->router != NULL || c->closing)
        return;
    if (c->retry_ev)
        evtimer_del(c->retry_ev);
    if (routed(c)) {
        struct hq__router_hooks rh = {router_map, router_node_down, c};

        if (hq__router_new(c->base, c->addr, &c->router) != HQ_OK) {
            went_down(c, "cannot set up the cluster router: out of memory");
            return;
        }
        hq__router_set_hooks(c->router, &rh);
        if (hq__router_has_map(c->router))
            router_map(c);
        return;
    }
    if (c->addr->nsentinels) {
        struct hq__store_seed m;
        struct hq__err e;

        if (hq__conn_sentinel_resolve(c->addr, &m, &e) != HQ_OK) {
            went_down(c, e.msg);
            return;
        }
        c->master_port = m.port;
        memcpy(c->master_host, m.host, sizeof(c->master_host));
        host = c->master_host;
        port = c->master_port;
        snprintf(name, sizeof(name), "%s:%d", host, port);
    } else {
        hq__store_addr_name(c->addr, name, sizeof(name));
    }
    if (c->addr->unix_path[0])
        ac = redisAsyncConnectUnix(c->addr->unix_path);
    else
        ac = redisAsyncConnect(host, port);
    if (ac == NULL || ac->err || hq__redis_event_attach(ac, c->base) != REDIS_OK) {
        snprintf(why, sizeof(why), "cannot connect to redis at '%s': %s", name,
                 ac == NULL ? "out of memory"
                 : ac->err  ? ac->errstr
                            : "cannot attach to the event loop");
        if (ac)
            redisAsyncFree(ac);
        went_down(c, why);
        return;
    }
    ac->data = c;
    c->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (c->addr->user[0])
        redisAsyncCommand(ac, ignore_reply, NULL, "AUTH %s %s", c->addr->user,
                          c->addr->password);
    else if (c->addr->password[0])
        redisAsyncCommand(ac, ignore_reply, NULL, "AUTH %s", c->addr->password);
    if (c->addr->db)
        redisAsyncCommand(ac, ignore_reply, NULL, "SELECT %d", c->addr->db);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hq__conn_start(arg);
}

/* Take `ac` away from `c` and free it: its calls get NULL replies now. */
static void
drop(struct hq__conn *c)
{
    redisAsyncContext *ac = c->ac;

    c->ac = NULL;
    c->up = 0;
    if (ac != NULL)
        redisAsyncFree(ac);
}

void
hq__conn_reset(struct hq__conn *c, const char *why)
{
    if (c->router) {
        router_node_down(why, c);
        hq__router_reset(c->router);
        return;
    }
    if (c->ac == NULL)
        return;
    drop(c);
    went_down(c, why);
}

void
hq__conn_reset_shard(struct hq__conn *c, unsigned shard, const char *why)
{
    if (c->router == NULL) {
        hq__conn_reset(c, why);
        return;
    }
    router_node_down(why, c);
    hq__router_reset_slot(c->router, hq__cluster_shard_slot(c->ns, shard));
}

void
hq__conn_no_reconnect(struct hq__conn *c)
{
    c->closing = 1;
    if (c->retry_ev)
        evtimer_del(c->retry_ev);
}

void
hq__conn_release(struct hq__conn *c)
{
    c->closing = 1;
    hq__router_free(c->router);
    c->router = NULL;
    drop(c);
    if (c->stale_ev)
        event_free(c->stale_ev);
    c->stale_ev = NULL;
    if (c->retry_ev)
        event_free(c->retry_ev);
    c->retry_ev = NULL;
}

redisAsyncContext *
hq__conn_for_shard(struct hq__conn *c, unsigned shard)
{
    if (routed(c)) {
        if (c->router == NULL && (c->flags & HQ_CONN_ON_DEMAND))
            hq__conn_start(c);
        if (c->router == NULL)
            return NULL;
        return hq__router_slot_ac(c->router, hq__cluster_shard_slot(c->ns, shard));
    }
    if (c->ac == NULL && (c->flags & HQ_CONN_ON_DEMAND))
        hq__conn_start(c);
    if (c->ac == NULL || (c->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)))
        return NULL;
    return c->ac;
}

int
hq__conn_shard_node(struct hq__conn *c, unsigned shard)
{
    if (routed(c))
        return c->router ? hq__router_slot_node(c->router,
                                                hq__cluster_shard_slot(c->ns, shard))
                         : -1;
    return c->ac != NULL ? 0 : -1;
}

/* An async call in flight: enough to send it again as EVAL on NOSCRIPT. */
struct async_call {
    redisCallbackFn *fn;
    void *privdata;
    const char *name;
    int argc;
    int resent;
    const char **cmd;
    size_t *cmdlen;
    /* argument bytes follow */
};

static void
async_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct async_call *call = privdata;

    check_stale(ac, reply);
    if (hq__store_is_noscript(reply) && !call->resent) {
        const struct hq__script *s = hq__store_script(call->name);
        call->resent = 1;
        call->cmd[0] = "EVAL";
        call->cmdlen[0] = 4;
        call->cmd[1] = s->src;
        call->cmdlen[1] = s->len;
        if (redisAsyncCommandArgv(ac, async_reply, call, call->argc + 4,
                                  call->cmd, call->cmdlen) == REDIS_OK)
            return;
        reply = NULL;
    }
    call->fn(ac, reply, call->privdata);
    free(call);
}

int
hq__conn_eval(struct hq__conn *c, unsigned shard, const char *name, int argc,
              const char **argv, const size_t *argvlen, redisCallbackFn *fn,
              void *privdata)
{
    size_t bytes = 0, n = (size_t)argc + 4;
    char prefix[HQ_PREFIX_MAX];
    redisAsyncContext *ac;
    struct async_call *call;
    const char **cmd;
    size_t *cmdlen;
    char *p;

    if (hq__store_script(name) == NULL || argc < 0 || argc > HQ_CONN_MAX_ARGS - 4)
        return HQ_EINVAL;
    if (routed(c)) {
        if (c->router == NULL && (c->flags & HQ_CONN_ON_DEMAND))
            hq__conn_start(c);
        if (c->router == NULL)
            return HQ_ESTORE;
        hq__store_prefix(c->ns, shard, prefix, sizeof(prefix));
        return hq__router_eval(c->router, hq__cluster_shard_slot(c->ns, shard),
                               name, prefix, argc, argv, argvlen, fn, privdata);
    }
    ac = hq__conn_for_shard(c, shard);
    if (ac == NULL)
        return HQ_ESTORE;
    hq__store_prefix(c->ns, shard, prefix, sizeof(prefix));
    for (int i = 0; i < argc; i++)
        bytes += argvlen ? argvlen[i] : strlen(argv[i]);
    bytes += strlen(prefix) + 1;
    call = malloc(sizeof(*call) + n * (sizeof(*cmd) + sizeof(*cmdlen)) + bytes);
    if (call == NULL)
        return HQ_ENOMEM;
    cmd = (const char **)(call + 1);
    cmdlen = (size_t *)(cmd + n);
    p = (char *)(cmdlen + n);
    hq__store_eval_cmd(name, 0, prefix, argc, argv, argvlen, cmd, cmdlen);
    /* Keep our own copy of every argument for a resend. */
    for (size_t i = 3; i < n; i++) {
        memcpy(p, cmd[i], cmdlen[i]);
        cmd[i] = p;
        p += cmdlen[i];
    }
    call->fn = fn;
    call->privdata = privdata;
    call->name = hq__store_script(name)->name;
    call->argc = argc;
    call->resent = 0;
    call->cmd = cmd;
    call->cmdlen = cmdlen;
    if (redisAsyncCommandArgv(ac, async_reply, call, (int)n, cmd, cmdlen) !=
        REDIS_OK) {
        free(call);
        return HQ_ESTORE;
    }
    return HQ_OK;
}

int
hq__conn_command(struct hq__conn *c, unsigned shard, int argc,
                 const char **argv, const size_t *argvlen, redisCallbackFn *fn,
                 void *privdata)
{
    redisAsyncContext *ac;

    if (routed(c)) {
        if (c->router == NULL && (c->flags & HQ_CONN_ON_DEMAND))
            hq__conn_start(c);
        if (c->router == NULL)
            return HQ_ESTORE;
        return hq__router_command(c->router, hq__cluster_shard_slot(c->ns, shard),
                                  argc, argv, argvlen, fn, privdata);
    }
    ac = hq__conn_for_shard(c, shard);
    if (ac == NULL ||
        redisAsyncCommandArgv(ac, fn, privdata, argc, argv, argvlen) != REDIS_OK)
        return HQ_ESTORE;
    return HQ_OK;
}

int
hq__conn_subscribe(struct hq__conn *c, unsigned shard, const char *name,
                   redisCallbackFn *fn, void *privdata)
{
    char ch[HQ_PREFIX_MAX + 64];
    size_t n = hq__store_prefix(c->ns, shard, ch, sizeof(ch));
    size_t len = strlen(name);

    if (len == 0 || n + len >= sizeof(ch))
        return HQ_EINVAL;
    memcpy(ch + n, name, len + 1);
    n += len;
    if (routed(c)) {
        if (c->router == NULL)
            return HQ_ESTORE;
        return hq__router_subscribe(c->router, hq__cluster_shard_slot(c->ns, shard),
                                    ch, n, fn, privdata);
    }
    if (!c->up || c->ac == NULL ||
        (c->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)))
        return HQ_ESTORE;
    /* The SUBSCRIBE first: hiredis 0.14 learns the channel's callback from
     * it, and then hands it the `smessage`s too (router.c says more). */
    if (redisAsyncCommand(c->ac, fn, privdata, "SUBSCRIBE %b", ch, n) != REDIS_OK ||
        (c->sharded &&
         redisAsyncCommand(c->ac, NULL, NULL, "SSUBSCRIBE %b", ch, n) != REDIS_OK))
        return HQ_ESTORE;
    return HQ_OK;
}
