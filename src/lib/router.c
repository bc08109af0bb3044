/*
 * The cluster router (see router_int.h for the contract).
 *
 * DESIGN: a call is a small heap object holding a copy of its command, so
 * that it can be sent again — to another master after MOVED, after a wait
 * after TRYAGAIN, as EVAL after NOSCRIPT — without the caller's help. It
 * is in exactly one place at a time: in flight on one node's connection
 * (hiredis holds it as privdata), or waiting on its own timer (then it is
 * in the router's `waiting` list, so that hq__router_free() can answer
 * it). Every path ends in finish(), which calls the caller's function once
 * and frees the call.
 *
 * Nodes are kept by host:port for the router's life; a node's connection
 * is made when a call needs it and dropped when it fails, with a backoff
 * before the next attempt (the one reconnect policy of clock_int.h, so a
 * dead master costs one refused connect per backoff, not one per call). Any failure has the map read again, at most
 * once per HQ_ROUTER_REFRESH_MS: during a failover the map changes when
 * the cluster has promoted a replica, and the calls waiting then find it.
 *
 * Subscriptions (hq__router_subscribe()) are a wish list: each channel
 * should be subscribed on its slot's master. A node has a second
 * connection for them, since a connection in subscribe mode takes no other
 * command; it first asks the node whether it has sharded Pub/Sub (COMMAND
 * INFO SSUBSCRIBE, before entering subscribe mode). sub_sync() sends what
 * is not where the map says: SUBSCRIBE, and SSUBSCRIBE when the node has
 * it, to the master. The scripts SPUBLISH where the server has it, else
 * PUBLISH (_prelude.lua), so one of the two hears every message on Redis
 * 7 and on Redis 6 alike. A node that lost a slot tells its subscribers
 * with `sunsubscribe` (Redis 7.0): the channel is sent again where the map
 * read again says. The owner hears of each message and `sunsubscribe`
 * (messages may have been missed since).
 *
 * hiredis 0.14 knows nothing of sharded Pub/Sub. The plain SUBSCRIBE puts
 * the channel in hiredis's table of subscriptions, and hiredis then hands
 * every push of that channel (`smessage`, `ssubscribe`, `sunsubscribe`)
 * to its callback by the channel's name. It keeps an empty callback per
 * SSUBSCRIBE until the connection closes: a few bytes per subscription
 * sent, and only a slot move or a reconnect sends one again. It drops a
 * subscribed connection on any error reply (MOVED for a slot that moved
 * in between, CLUSTERDOWN, NOPERM): that is a lost connection, whose
 * channels are sent again, after the backoff, where the map read again
 * says.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/async.h>

#include "clock_int.h"
#include "redis_event_int.h"
#include "router_int.h"
#include "scripts_int.h"

#define MAX_NODES HQ_ROUTER_NODES_MAX
#define MAX_HOPS 8               /* MOVED / ASK followed per call */
#define HQ_ROUTER_REFRESH_MS 100 /* the map is read at most this often */

struct rnode {
    struct hq__router *r;
    char host[256];
    int port;
    redisAsyncContext *ac; /* NULL = not connected */
    int64_t retry_at_ms;   /* no connect attempt before this */
    int attempts;          /* failed attempts since the last success */
    redisAsyncContext *sub_ac; /* subscriptions only; NULL = none */
    int sub_ready;         /* sub_ac has answered the probe */
    int sharded;           /* the node has SSUBSCRIBE (Redis >= 7.0) */
    int64_t sub_retry_at_ms;
    int sub_attempts;
};

/* A channel the owner wants subscribed on its slot's master. */
struct rsub {
    struct hq__router *r;
    unsigned slot;
    int node;            /* index in r->nodes it was sent to; -1 = to send */
    redisCallbackFn *fn; /* the owner's */
    void *privdata;
    size_t len;
    char channel[];
};

struct rcall {
    struct hq__router *r;
    struct rcall *prev, *next; /* in r->waiting while on its timer */
    struct event *timer;
    redisCallbackFn *fn;
    void *privdata;
    unsigned slot;
    const char *script; /* script name, NULL for a plain command */
    int asking;         /* the next send goes to ask_host:ask_port */
    char ask_host[256];
    int ask_port;
    int hops, waits;
    int64_t deadline_ms;
    int argc;
    const char **cmd;
    size_t *cmdlen;
    /* the argument bytes follow */
};

struct hq__router {
    struct event_base *base;
    const struct hq__store_addr *addr;
    struct hq__cluster_map *map;
    int has_map;
    struct rnode *nodes[MAX_NODES];
    unsigned nnodes;
    unsigned next_seed;       /* which node to ask for the map next */
    int refreshing;           /* a CLUSTER SLOTS in flight */
    int64_t last_refresh_ms;
    struct event *refresh_ev; /* a refresh put off by the rate limit */
    struct rcall *waiting;
    int freeing;
    struct hq__router_stats stats;
    struct hq__router_hooks hooks;
    uint64_t rng;             /* the reconnect backoff's jitter */
    struct rsub **subs;       /* hq__router_subscribe(); each its own block */
    unsigned nsubs;
    struct event *sub_ev;     /* sub_sync() again: something is not sent */
};

static void
add_timer_ms(struct event *ev, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};

    evtimer_add(ev, &tv);
}

static void refresh(struct hq__router *r);
static void send_call(struct rcall *call);
static void sub_sync(struct hq__router *r);
static void sub_drop(struct rnode *n);
static void sub_cb(evutil_socket_t fd, short what, void *arg);

/* ------------------------------------------------------------------------ */
/* Nodes and their connections.                                             */

static struct rnode *
node_get(struct hq__router *r, const char *host, int port)
{
    struct rnode *n;

    for (unsigned i = 0; i < r->nnodes; i++)
        if (r->nodes[i]->port == port && strcmp(r->nodes[i]->host, host) == 0)
            return r->nodes[i];
    if (r->nnodes == MAX_NODES || strlen(host) >= sizeof(n->host))
        return NULL;
    n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->r = r;
    memcpy(n->host, host, strlen(host) + 1);
    n->port = port;
    r->nodes[r->nnodes++] = n;
    return n;
}

static void
node_failed(struct rnode *n)
{
    int ms = hq__reconnect_backoff_ms(n->attempts, hq__rng_next(&n->r->rng));

    n->ac = NULL;
    if (n->attempts < 16)
        n->attempts++;
    n->retry_at_ms = hq__mono_ms() + ms;
    if (!n->r->freeing)
        refresh(n->r);
}

static void
tell_down(struct rnode *n, const char *how, const char *detail)
{
    char why[400];

    if (n->r->freeing || n->r->hooks.node_down == NULL)
        return;
    snprintf(why, sizeof(why), "%s redis node %s:%d%s%s", how, n->host, n->port,
             detail && detail[0] ? ": " : "", detail ? detail : "");
    n->r->hooks.node_down(why, n->r->hooks.arg);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
    struct rnode *n = ac->data;

    if (n == NULL || n->ac != ac)
        return;
    if (status != REDIS_OK) {
        node_failed(n); /* hiredis frees `ac` after this returns */
        tell_down(n, "cannot connect to", ac->errstr);
    } else {
        n->attempts = 0;
    }
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rnode *n = ac->data;

    if (n == NULL || n->ac != ac)
        return;
    node_failed(n);
    tell_down(n, "lost the connection to", status == REDIS_OK ? "" : ac->errstr);
}

static void
ignore_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    (void)reply;
    (void)privdata;
}

/* The node's connection, made now if need be; NULL while backing off. */
static redisAsyncContext *
node_ac(struct rnode *n)
{
    const struct hq__store_addr *a = n->r->addr;
    redisAsyncContext *ac;

    if (n->ac)
        return n->ac;
    if (n->r->freeing || hq__mono_ms() < n->retry_at_ms)
        return NULL;
    ac = redisAsyncConnect(n->host, n->port);
    if (ac == NULL)
        return NULL;
    if (ac->err || hq__redis_event_attach(ac, n->r->base) != REDIS_OK) {
        redisAsyncFree(ac);
        node_failed(n);
        return NULL;
    }
    ac->data = n;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (a->user[0])
        redisAsyncCommand(ac, ignore_reply, NULL, "AUTH %s %s", a->user,
                          a->password);
    else if (a->password[0])
        redisAsyncCommand(ac, ignore_reply, NULL, "AUTH %s", a->password);
    n->ac = ac;
    return ac;
}

/* The master of `slot` in the map, or NULL. */
static struct rnode *
slot_node(struct hq__router *r, unsigned slot)
{
    const struct hq__cluster_node *cn = hq__cluster_map_node(r->map, slot);

    return cn ? node_get(r, cn->host, cn->port) : NULL;
}

/* ------------------------------------------------------------------------ */
/* The slot map.                                                             */

static void
slots_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct hq__router *r = privdata;
    struct rnode *n = ac->data;
    struct hq__cluster_map *m;
    struct hq__err err;

    r->refreshing = 0;
    if (r->freeing)
        return;
    m = malloc(sizeof(*m));
    if (m && reply && n &&
        hq__cluster_map_from_slots(m, reply, n->host, &err) == HQ_OK) {
        memcpy(r->map, m, sizeof(*m));
        r->has_map = 1;
        r->stats.refreshes++;
        sub_sync(r);
        if (r->hooks.map)
            r->hooks.map(r->hooks.arg);
    } else {
        /* Ask another node next time. */
        r->next_seed++;
        refresh(r);
    }
    free(m);
}

static void
refresh_now(struct hq__router *r)
{
    unsigned total = r->nnodes;

    if (r->refreshing || r->freeing)
        return;
    r->last_refresh_ms = hq__mono_ms();
    /* A connected node first; else the seeds and known nodes in turn. */
    for (unsigned i = 0; i < total; i++) {
        struct rnode *n = r->nodes[i];
        if (n->ac && n->attempts == 0 &&
            redisAsyncCommand(n->ac, slots_reply, r, "CLUSTER SLOTS") == REDIS_OK) {
            r->refreshing = 1;
            return;
        }
    }
    for (unsigned k = 0; k < total; k++) {
        struct rnode *n = r->nodes[(r->next_seed + k) % total];
        redisAsyncContext *ac = node_ac(n);
        if (ac && redisAsyncCommand(ac, slots_reply, r, "CLUSTER SLOTS") == REDIS_OK) {
            r->next_seed = (r->next_seed + k + 1) % total;
            r->refreshing = 1;
            return;
        }
    }
    /* Every node is backing off: try again once one may be reached. */
    add_timer_ms(r->refresh_ev, HQ_ROUTER_REFRESH_MS);
}

static void
refresh_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    refresh_now(arg);
}

/* Read the map again, now or once HQ_ROUTER_REFRESH_MS has passed. */
static void
refresh(struct hq__router *r)
{
    int64_t wait = r->last_refresh_ms + HQ_ROUTER_REFRESH_MS - hq__mono_ms();

    if (r->refreshing || r->freeing || evtimer_pending(r->refresh_ev, NULL))
        return;
    if (wait <= 0)
        refresh_now(r);
    else
        add_timer_ms(r->refresh_ev, wait);
}

/* ------------------------------------------------------------------------ */
/* Calls.                                                                    */

static void
finish(struct rcall *call, redisAsyncContext *ac, redisReply *reply)
{
    if (call->timer)
        event_free(call->timer);
    call->fn(ac, reply, call->privdata);
    free(call);
}

static void
unlink_waiting(struct rcall *call)
{
    if (call->prev)
        call->prev->next = call->next;
    else
        call->r->waiting = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
}

static void
wait_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rcall *call = arg;

    (void)fd;
    (void)what;
    unlink_waiting(call);
    send_call(call);
}

/*
 * Send `call` again after a short wait, or give it up with `reply` (which
 * may be NULL) when its patience is spent.
 */
static void
retry_later(struct rcall *call, redisAsyncContext *ac, redisReply *reply)
{
    struct hq__router *r = call->r;
    int ms = 25 << (call->waits < 4 ? call->waits : 4); /* 25 .. 400 ms */
    int64_t left = call->deadline_ms - hq__mono_ms();

    if (r->freeing || left <= 0 ||
        (call->timer == NULL &&
         (call->timer = evtimer_new(r->base, wait_cb, call)) == NULL)) {
        r->stats.given_up++;
        finish(call, ac, reply);
        return;
    }
    if (ms > left)
        ms = (int)left;
    call->waits++;
    r->stats.retried++;
    call->next = r->waiting;
    if (r->waiting)
        r->waiting->prev = call;
    r->waiting = call;
    add_timer_ms(call->timer, ms);
}

static void
call_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    struct rcall *call = privdata;
    struct hq__router *r = call->r;
    redisReply *reply = reply_;
    struct hq__redirect rd;

    if (reply == NULL || r->freeing) {
        /* The connection failed (node_failed() has the map read again):
         * the caller decides; the call may have run. */
        finish(call, ac, reply);
        return;
    }
    if (reply->type != REDIS_REPLY_ERROR) {
        finish(call, ac, reply);
        return;
    }
    if (call->script && strncmp(reply->str, "NOSCRIPT", 8) == 0 &&
        strcmp(call->cmd[0], "EVALSHA") == 0) {
        const struct hq__script *s = hq__store_script(call->script);
        call->cmd[0] = "EVAL";
        call->cmdlen[0] = 4;
        call->cmd[1] = s->src;
        call->cmdlen[1] = s->len;
        if (redisAsyncCommandArgv(ac, call_reply, call, call->argc, call->cmd,
                                  call->cmdlen) != REDIS_OK)
            finish(call, ac, NULL);
        return;
    }
    switch (hq__cluster_redirect_parse(reply->str, reply->len, &rd)) {
    case HQ_REDIRECT_MOVED:
        r->stats.moved++;
        if (rd.host[0] == '\0') {
            struct rnode *n = ac->data;
            snprintf(rd.host, sizeof(rd.host), "%s", n ? n->host : "");
        }
        hq__cluster_map_set(r->map, rd.slot, rd.host, rd.port);
        refresh(r);
        if (++call->hops > MAX_HOPS) {
            finish(call, ac, reply);
            return;
        }
        send_call(call);
        return;
    case HQ_REDIRECT_ASK:
        r->stats.ask++;
        if (call->script || ++call->hops > MAX_HOPS) {
            /* See router_int.h: a script waits until the move is over. */
            retry_later(call, ac, reply);
            return;
        }
        if (rd.host[0] == '\0') {
            struct rnode *n = ac->data;
            snprintf(rd.host, sizeof(rd.host), "%s", n ? n->host : "");
        }
        call->asking = 1;
        memcpy(call->ask_host, rd.host, sizeof(call->ask_host));
        call->ask_port = rd.port;
        send_call(call);
        return;
    case HQ_REDIRECT_READONLY:
    case HQ_REDIRECT_MASTERDOWN:
        refresh(r);
        retry_later(call, ac, reply);
        return;
    case HQ_REDIRECT_TRYAGAIN:
    case HQ_REDIRECT_CLUSTERDOWN:
    case HQ_REDIRECT_LOADING:
        retry_later(call, ac, reply);
        return;
    case HQ_REDIRECT_NONE:
        break;
    }
    finish(call, ac, reply);
}

/* Send `call` where it goes now; wait (or give up) when nowhere. */
static void
send_call(struct rcall *call)
{
    struct hq__router *r = call->r;
    struct rnode *n;
    redisAsyncContext *ac;

    if (call->asking) {
        call->asking = 0;
        n = node_get(r, call->ask_host, call->ask_port);
        ac = n ? node_ac(n) : NULL;
        if (ac && redisAsyncCommand(ac, ignore_reply, NULL, "ASKING") == REDIS_OK &&
            redisAsyncCommandArgv(ac, call_reply, call, call->argc, call->cmd,
                                  call->cmdlen) == REDIS_OK)
            return;
    } else {
        n = slot_node(r, call->slot);
        ac = n ? node_ac(n) : NULL;
        if (ac && redisAsyncCommandArgv(ac, call_reply, call, call->argc,
                                        call->cmd, call->cmdlen) == REDIS_OK)
            return;
    }
    refresh(r);
    retry_later(call, NULL, NULL);
}

/* A call holding its own copy of cmd[0..argc) (cmd[1] of a script: its SHA). */
static struct rcall *
call_new(struct hq__router *r, unsigned slot, int argc, const char **cmd,
         const size_t *cmdlen, redisCallbackFn *fn, void *privdata)
{
    size_t bytes = 0;
    struct rcall *call;
    char *p;

    for (int i = 0; i < argc; i++)
        bytes += cmdlen[i];
    call = calloc(1, sizeof(*call) + (size_t)argc * (sizeof(char *) + sizeof(size_t)) +
                         bytes);
    if (call == NULL)
        return NULL;
    call->r = r;
    call->fn = fn;
    call->privdata = privdata;
    call->slot = slot;
    call->argc = argc;
    call->deadline_ms = hq__mono_ms() + HQ_ROUTER_PATIENCE_MS;
    call->cmd = (const char **)(call + 1);
    call->cmdlen = (size_t *)(call->cmd + argc);
    p = (char *)(call->cmdlen + argc);
    for (int i = 0; i < argc; i++) {
        memcpy(p, cmd[i], cmdlen[i]);
        call->cmd[i] = p;
        call->cmdlen[i] = cmdlen[i];
        p += cmdlen[i];
    }
    return call;
}

/* Send a new call now, or say HQ_ESTORE (and free it) when it cannot go. */
static int
start_call(struct rcall *call)
{
    struct rnode *n;
    redisAsyncContext *ac;

    if (!call->r->has_map) {
        /* Just started: the call waits for the map (within its patience). */
        retry_later(call, NULL, NULL);
        return HQ_OK;
    }
    n = slot_node(call->r, call->slot);
    ac = n ? node_ac(n) : NULL;

    if (ac == NULL || redisAsyncCommandArgv(ac, call_reply, call, call->argc,
                                            call->cmd, call->cmdlen) != REDIS_OK) {
        refresh(call->r);
        free(call);
        return HQ_ESTORE;
    }
    return HQ_OK;
}

int
hq__router_eval(struct hq__router *r, unsigned slot, const char *name,
                const char *prefix, int argc, const char **argv,
                const size_t *argvlen, redisCallbackFn *fn, void *privdata)
{
    const struct hq__script *s = hq__store_script(name);
    const char **cmd;
    size_t *cmdlen;
    struct rcall *call;

    if (s == NULL || argc < 0 || argc > 4096 || slot >= HQ_CLUSTER_SLOTS)
        return HQ_EINVAL;
    cmd = malloc((size_t)(argc + 4) * sizeof(*cmd));
    cmdlen = malloc((size_t)(argc + 4) * sizeof(*cmdlen));
    if (cmd == NULL || cmdlen == NULL) {
        free(cmd);
        free(cmdlen);
        return HQ_ENOMEM;
    }
    hq__store_eval_cmd(name, 0, prefix, argc, argv, argvlen, cmd, cmdlen);
    call = call_new(r, slot, argc + 4, cmd, cmdlen, fn, privdata);
    free(cmd);
    free(cmdlen);
    if (call == NULL)
        return HQ_ENOMEM;
    call->cmd[0] = "EVALSHA"; /* static strings, for the NOSCRIPT check */
    call->script = s->name;
    return start_call(call);
}

int
hq__router_command(struct hq__router *r, unsigned slot, int argc,
                   const char **argv, const size_t *argvlen,
                   redisCallbackFn *fn, void *privdata)
{
    size_t *lens;
    struct rcall *call;

    if (argc < 1 || slot >= HQ_CLUSTER_SLOTS)
        return HQ_EINVAL;
    lens = malloc((size_t)argc * sizeof(*lens));
    if (lens == NULL)
        return HQ_ENOMEM;
    for (int i = 0; i < argc; i++)
        lens[i] = argvlen ? argvlen[i] : strlen(argv[i]);
    call = call_new(r, slot, argc, argv, lens, fn, privdata);
    free(lens);
    if (call == NULL)
        return HQ_ENOMEM;
    return start_call(call);
}

/* ------------------------------------------------------------------------ */
/* Subscriptions.                                                            */

#define SUB_RETRY_MS 250 /* sub_sync() again while something is not sent */

static int
node_index(const struct hq__router *r, const struct rnode *n)
{
    for (unsigned i = 0; i < r->nnodes; i++)
        if (r->nodes[i] == n)
            return (int)i;
    return -1;
}

/* Node `n`'s subscriptions are gone (its connection is): send them again. */
static void
sub_forget(struct rnode *n)
{
    struct hq__router *r = n->r;
    int idx = node_index(r, n);

    for (unsigned i = 0; i < r->nsubs; i++)
        if (r->subs[i]->node == idx)
            r->subs[i]->node = -1;
    if (!r->freeing && r->sub_ev && !evtimer_pending(r->sub_ev, NULL))
        add_timer_ms(r->sub_ev, SUB_RETRY_MS);
}

static void
sub_failed(struct rnode *n, const char *how, const char *detail)
{
    int ms = hq__reconnect_backoff_ms(n->sub_attempts, hq__rng_next(&n->r->rng));

    n->sub_ac = NULL;
    n->sub_ready = 0;
    if (n->sub_attempts < 16)
        n->sub_attempts++;
    n->sub_retry_at_ms = hq__mono_ms() + ms;
    sub_forget(n);
    if (n->r->freeing)
        return;
    refresh(n->r);
    tell_down(n, how, detail);
}

static void
sub_on_connect(const redisAsyncContext *ac, int status)
{
    struct rnode *n = ac->data;

    if (n != NULL && n->sub_ac == ac && status != REDIS_OK)
        sub_failed(n, "cannot connect (subscriptions) to", ac->errstr);
}

static void
sub_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rnode *n = ac->data;

    if (n != NULL && n->sub_ac == ac)
        sub_failed(n, "lost the subscriptions to",
                   status == REDIS_OK ? "" : ac->errstr);
}

/* COMMAND INFO SSUBSCRIBE: [[ssubscribe ...]] on 7.0, [nil] before. */
static void
sub_probe_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    struct rnode *n = privdata;
    redisReply *reply = reply_;

    if (reply == NULL || n->r->freeing || n->sub_ac != ac)
        return;
    n->sharded = reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
                 reply->element[0]->type == REDIS_REPLY_ARRAY;
    n->sub_ready = 1;
    n->sub_attempts = 0;
    sub_sync(n->r);
}

/* Start node `n`'s subscription connection (ready once probed). */
static void
sub_connect(struct rnode *n)
{
    const struct hq__store_addr *a = n->r->addr;
    redisAsyncContext *ac;

    if (n->sub_ac || n->r->freeing || hq__mono_ms() < n->sub_retry_at_ms)
        return;
    ac = redisAsyncConnect(n->host, n->port);
    if (ac == NULL)
        return;
    if (ac->err || hq__redis_event_attach(ac, n->r->base) != REDIS_OK) {
        redisAsyncFree(ac);
        sub_failed(n, "cannot connect (subscriptions) to", "");
        return;
    }
    ac->data = n;
    redisAsyncSetConnectCallback(ac, sub_on_connect);
    redisAsyncSetDisconnectCallback(ac, sub_on_disconnect);
    if (a->user[0])
        redisAsyncCommand(ac, ignore_reply, NULL, "AUTH %s %s", a->user,
                          a->password);
    else if (a->password[0])
        redisAsyncCommand(ac, ignore_reply, NULL, "AUTH %s", a->password);
    n->sub_ac = ac;
    if (redisAsyncCommand(ac, sub_probe_reply, n, "COMMAND INFO SSUBSCRIBE") !=
        REDIS_OK)
        sub_drop(n);
}

/* Close node `n`'s subscription connection, if any, without a backoff. */
static void
sub_drop(struct rnode *n)
{
    redisAsyncContext *ac = n->sub_ac;

    n->sub_ac = NULL;
    n->sub_ready = 0;
    if (ac) {
        ac->data = NULL;
        redisAsyncFree(ac); /* subscription callbacks get NULL: ignored */
        sub_forget(n);
    }
}

/* Every message of a channel, `ssubscribe` and `sunsubscribe` included. */
static void
sub_message(redisAsyncContext *ac, void *reply_, void *privdata)
{
    struct rsub *s = privdata;
    redisReply *reply = reply_;

    if (reply == NULL || s->r->freeing)
        return;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        strcasecmp(reply->element[0]->str, "sunsubscribe") == 0) {
        /* The node lost the slot: subscribe where the map now says. */
        s->node = -1;
        refresh(s->r);
        if (!evtimer_pending(s->r->sub_ev, NULL))
            add_timer_ms(s->r->sub_ev, SUB_RETRY_MS);
    }
    s->fn(ac, reply, s->privdata);
}

/* Send every subscription that is not on its slot's master now. */
static void
sub_sync(struct hq__router *r)
{
    int pending = 0;

    if (r->freeing || !r->has_map)
        return;
    for (unsigned i = 0; i < r->nsubs; i++) {
        struct rsub *s = r->subs[i];
        struct rnode *n = slot_node(r, s->slot);
        int idx = n ? node_index(r, n) : -1;

        if (idx < 0) {
            pending = 1; /* no master now */
            continue;
        }
        if (s->node == idx)
            continue;
        sub_connect(n);
        if (n->sub_ac == NULL || !n->sub_ready) {
            pending = 1; /* backing off, or the probe will sync again */
            continue;
        }
        if (redisAsyncCommand(n->sub_ac, sub_message, s, "SUBSCRIBE %b",
                              s->channel, s->len) != REDIS_OK ||
            (n->sharded &&
             redisAsyncCommand(n->sub_ac, NULL, NULL, "SSUBSCRIBE %b",
                               s->channel, s->len) != REDIS_OK)) {
            pending = 1;
            continue;
        }
        s->node = idx;
    }
    if (pending && !evtimer_pending(r->sub_ev, NULL))
        add_timer_ms(r->sub_ev, SUB_RETRY_MS);
}

static void
sub_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sub_sync(arg);
}

int
hq__router_subscribe(struct hq__router *r, unsigned slot, const char *channel,
                     size_t len, redisCallbackFn *fn, void *privdata)
{
    struct rsub *s = NULL, **subs;

    if (slot >= HQ_CLUSTER_SLOTS || len == 0)
        return HQ_EINVAL;
    for (unsigned i = 0; i < r->nsubs; i++)
        if (r->subs[i]->len == len && memcmp(r->subs[i]->channel, channel, len) == 0)
            s = r->subs[i];
    if (s == NULL) {
        subs = realloc(r->subs, (r->nsubs + 1) * sizeof(*subs));
        if (subs == NULL)
            return HQ_ENOMEM;
        r->subs = subs;
        s = calloc(1, sizeof(*s) + len + 1);
        if (s == NULL)
            return HQ_ENOMEM;
        s->r = r;
        s->slot = slot;
        s->node = -1;
        s->len = len;
        memcpy(s->channel, channel, len);
        r->subs[r->nsubs++] = s;
    }
    s->fn = fn;
    s->privdata = privdata;
    sub_sync(r);
    return HQ_OK;
}

/* ------------------------------------------------------------------------ */
/* The router.                                                               */

int
hq__router_new(struct event_base *base, const struct hq__store_addr *addr,
               struct hq__router **out)
{
    struct hq__router *r = calloc(1, sizeof(*r));

    *out = NULL;
    if (r == NULL)
        return HQ_ENOMEM;
    r->base = base;
    r->addr = addr;
    r->rng = hq__rng_seed(r);
    r->map = malloc(sizeof(*r->map));
    r->refresh_ev = evtimer_new(base, refresh_cb, r);
    r->sub_ev = evtimer_new(base, sub_cb, r);
    if (r->map == NULL || r->refresh_ev == NULL || r->sub_ev == NULL)
        goto nomem;
    hq__cluster_map_init(r->map);
    for (unsigned i = 0; i < addr->nseeds; i++)
        if (node_get(r, addr->seeds[i].host, addr->seeds[i].port) == NULL)
            goto nomem;
    if (addr->nseeds == 0 && node_get(r, addr->host, addr->port) == NULL)
        goto nomem;
    refresh_now(r);
    *out = r;
    return HQ_OK;
nomem:
    hq__router_free(r);
    return HQ_ENOMEM;
}

/* Close node `n`'s connection, if it has one; its calls are answered NULL. */
static void
node_drop(struct rnode *n)
{
    redisAsyncContext *ac = n->ac;

    if (ac) {
        n->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac); /* answers its calls with NULL */
    }
}

void
hq__router_free(struct hq__router *r)
{
    if (r == NULL)
        return;
    r->freeing = 1;
    while (r->waiting) {
        struct rcall *call = r->waiting;
        unlink_waiting(call);
        finish(call, NULL, NULL);
    }
    for (unsigned i = 0; i < r->nnodes; i++) {
        node_drop(r->nodes[i]);
        sub_drop(r->nodes[i]);
        free(r->nodes[i]);
    }
    for (unsigned i = 0; i < r->nsubs; i++)
        free(r->subs[i]);
    free(r->subs);
    if (r->sub_ev)
        event_free(r->sub_ev);
    if (r->refresh_ev)
        event_free(r->refresh_ev);
    free(r->map);
    free(r);
}

void
hq__router_set_hooks(struct hq__router *r, const struct hq__router_hooks *hooks)
{
    r->hooks = *hooks;
}

void
hq__router_reset(struct hq__router *r)
{
    for (unsigned i = 0; i < r->nnodes; i++) {
        node_drop(r->nodes[i]);
        sub_drop(r->nodes[i]);
    }
    r->refreshing = 0;
    refresh(r);
}

void
hq__router_reset_slot(struct hq__router *r, unsigned slot)
{
    struct rnode *n = r->has_map ? slot_node(r, slot) : NULL;
    redisAsyncContext *ac;

    if (n == NULL || n->ac == NULL) {
        refresh(r);
        return;
    }
    ac = n->ac;
    node_failed(n); /* the backoff before the next connect, a map read */
    ac->data = NULL;
    redisAsyncFree(ac); /* answers its calls with NULL, a CLUSTER SLOTS too */
}

redisAsyncContext *
hq__router_slot_ac(struct hq__router *r, unsigned slot)
{
    struct rnode *n;

    if (!r->has_map) {
        /* A call made now waits for the map: say where it is being read. */
        for (unsigned i = 0; i < r->nnodes; i++)
            if (r->nodes[i]->ac)
                return r->nodes[i]->ac;
        return NULL;
    }
    n = slot_node(r, slot);

    return n ? node_ac(n) : NULL;
}

int
hq__router_slot_node(struct hq__router *r, unsigned slot)
{
    struct rnode *n;

    if (!r->has_map || slot >= HQ_CLUSTER_SLOTS || (n = slot_node(r, slot)) == NULL)
        return -1;
    for (unsigned i = 0; i < r->nnodes; i++)
        if (r->nodes[i] == n)
            return (int)i;
    return -1;
}

int
hq__router_has_map(const struct hq__router *r)
{
    return r->has_map;
}

void
hq__router_get_stats(const struct hq__router *r, struct hq__router_stats *out)
{
    *out = r->stats;
}
