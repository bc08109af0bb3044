/*
 * The Redis connection layer (see conn_int.h for the contract).
 *
 * DESIGN: hiredis does the protocol; this file decides when to connect,
 * what to do when a connection fails, and how a script call is sent. An
 * asynchronous connection that fails (refused, lost, or dropped by its
 * owner's watchdog) is never repaired: hiredis frees it, the owner hears
 * `down` once, and a timer makes a new one after the backoff. The owner's
 * callbacks of the calls in flight run with a NULL reply, in order, before
 * the reconnect can start, so nothing is answered twice.
 *
 * Scripts run by EVALSHA with the SHA1 computed once by store.c, so a call
 * costs one round trip and sends no script text. An asynchronous call keeps
 * a copy of its arguments until it is answered, so that a NOSCRIPT answer
 * can be sent again as EVAL on the same connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>

#include "conn_int.h"
#include "scripts_int.h"

#define MAX_ARGS 4096

static void
addr_name(const struct hq__store_addr *a, char *buf, size_t size)
{
    if (a->unix_path[0])
        snprintf(buf, size, "unix://%s", a->unix_path);
    else
        snprintf(buf, size, "%s:%d", a->host, a->port);
}

int
hq__conn_backoff_ms(int attempt, uint64_t rnd)
{
    int ms = HQ_CONN_BACKOFF_MIN_MS;

    while (attempt-- > 0 && ms < HQ_CONN_BACKOFF_MAX_MS)
        ms *= 2;
    if (ms > HQ_CONN_BACKOFF_MAX_MS)
        ms = HQ_CONN_BACKOFF_MAX_MS;
    return ms / 2 + (int)(rnd % (uint64_t)(ms / 2 + 1));
}

/* ------------------------------------------------------------------------ */
/* Script calls: the command, and NOSCRIPT.                                 */

/* Build "EVALSHA sha 1 prefix args..." (or EVAL src) into cmd/cmdlen. */
static int
build_eval(const char *name, int use_src, const char *prefix, int argc,
           const char **argv, const size_t *argvlen, const char **cmd,
           size_t *cmdlen)
{
    const struct hq__script *s = hq__store_script(name);

    if (s == NULL || argc < 0 || argc > MAX_ARGS - 4)
        return HQ_EINVAL;
    cmd[0] = use_src ? "EVAL" : "EVALSHA";
    cmdlen[0] = strlen(cmd[0]);
    cmd[1] = use_src ? s->src : hq__store_script_sha(name);
    cmdlen[1] = use_src ? s->len : 40;
    cmd[2] = "1";
    cmdlen[2] = 1;
    cmd[3] = prefix;
    cmdlen[3] = strlen(prefix);
    for (int i = 0; i < argc; i++) {
        cmd[4 + i] = argv[i];
        cmdlen[4 + i] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    return HQ_OK;
}

static int
is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR &&
           strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* ------------------------------------------------------------------------ */
/* Blocking connections.                                                    */

static int
check_reply(redisReply *r, const char *what, struct hq__err *err)
{
    if (r == NULL)
        return hq__err_set(err, HQ_ESTORE, "%s: no reply from redis", what);
    if (r->type == REDIS_REPLY_ERROR) {
        hq__err_set(err, HQ_ESTORE, "%s: %s", what, r->str);
        freeReplyObject(r);
        return HQ_ESTORE;
    }
    freeReplyObject(r);
    return HQ_OK;
}

redisContext *
hq__conn_connect_sync(const struct hq__store_addr *addr, struct hq__err *err)
{
    struct timeval tv = {addr->timeout_ms / 1000,
                         (addr->timeout_ms % 1000) * 1000};
    redisContext *c;
    char name[300];

    addr_name(addr, name, sizeof(name));
    if (addr->unix_path[0])
        c = redisConnectUnixWithTimeout(addr->unix_path, tv);
    else
        c = redisConnectWithTimeout(addr->host, addr->port, tv);
    if (c == NULL) {
        hq__err_set(err, HQ_ENOMEM, "cannot connect to redis at '%s': out of memory", name);
        return NULL;
    }
    if (c->err) {
        hq__err_set(err, HQ_ESTORE, "cannot connect to redis at '%s': %s", name,
                    c->errstr);
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    /* TCP only: on a unix socket it fails and leaves c->err set. */
    if (!addr->unix_path[0])
        redisEnableKeepAlive(c);
    if (addr->password[0] &&
        check_reply(redisCommand(c, "AUTH %s", addr->password), "auth", err))
        goto fail;
    if (addr->db &&
        check_reply(redisCommand(c, "SELECT %d", addr->db), "select", err))
        goto fail;
    return c;
fail:
    if (c->err)
        hq__err_set(err, HQ_ESTORE, "redis at '%s': %s", name, c->errstr);
    redisFree(c);
    return NULL;
}

void
hq__sconn_init(struct hq__sconn *c, const struct hq__store_addr *addr,
               const struct hq__store_ns *ns)
{
    c->addr = addr;
    c->ns = ns;
    c->rc = NULL;
}

void
hq__sconn_release(struct hq__sconn *c)
{
    if (c->rc)
        redisFree(c->rc);
    c->rc = NULL;
}

redisContext *
hq__sconn_for_shard(struct hq__sconn *c, unsigned shard, struct hq__err *err)
{
    (void)shard; /* one connection serves every shard */
    /* A broken connection stays broken in hiredis: make a new one. */
    if (c->rc == NULL || c->rc->err) {
        if (c->rc)
            redisFree(c->rc);
        c->rc = hq__conn_connect_sync(c->addr, err);
    }
    return c->rc;
}

static redisReply *
take_reply(redisContext *c, redisReply *r, const char *name,
           struct hq__err *err)
{
    if (r == NULL) {
        hq__err_set(err, HQ_ESTORE, "script %s: %s", name,
                    c->errstr[0] ? c->errstr : "no reply from redis");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        hq__err_set(err, HQ_ESTORE, "script %s: %s", name, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* A blocking script call being sent: its connection and command. */
struct sync_call {
    redisContext *rc;
    char prefix[HQ_PREFIX_MAX];
    const char **cmd;
    size_t *cmdlen;
};

/* Connect if need be and build the EVALSHA of `name` on `shard` into `sc`;
 * HQ_OK, or an error with `err` set. sync_call_release() in both cases. */
static int
sync_call_init(struct sync_call *sc, struct hq__sconn *c, unsigned shard,
               const char *name, int argc, const char **argv,
               const size_t *argvlen, struct hq__err *err)
{
    memset(sc, 0, sizeof(*sc));
    if (hq__store_script(name) == NULL || argc < 0 || argc > MAX_ARGS - 4)
        return hq__err_set(err, HQ_EINVAL, "no script named '%s'", name);
    sc->rc = hq__sconn_for_shard(c, shard, err);
    if (sc->rc == NULL)
        return HQ_ESTORE;
    hq__store_prefix(c->ns, shard, sc->prefix, sizeof(sc->prefix));
    sc->cmd = malloc(sizeof(*sc->cmd) * (size_t)(argc + 4));
    sc->cmdlen = malloc(sizeof(*sc->cmdlen) * (size_t)(argc + 4));
    if (sc->cmd == NULL || sc->cmdlen == NULL)
        return hq__err_set(err, HQ_ENOMEM, "script %s: out of memory", name);
    return build_eval(name, 0, sc->prefix, argc, argv, argvlen, sc->cmd,
                      sc->cmdlen);
}

static void
sync_call_release(struct sync_call *sc)
{
    free(sc->cmd);
    free(sc->cmdlen);
}

redisReply *
hq__sconn_eval(struct hq__sconn *c, unsigned shard, const char *name,
               int argc, const char **argv, const size_t *argvlen,
               struct hq__err *err)
{
    struct sync_call sc;
    redisReply *r = NULL;

    if (sync_call_init(&sc, c, shard, name, argc, argv, argvlen, err) == HQ_OK) {
        r = redisCommandArgv(sc.rc, argc + 4, sc.cmd, sc.cmdlen);
        if (is_noscript(r)) {
            freeReplyObject(r);
            build_eval(name, 1, sc.prefix, argc, argv, argvlen, sc.cmd, sc.cmdlen);
            r = redisCommandArgv(sc.rc, argc + 4, sc.cmd, sc.cmdlen);
        }
        r = take_reply(sc.rc, r, name, err);
    }
    sync_call_release(&sc);
    return r;
}

int
hq__sconn_eval_append(struct hq__sconn *c, unsigned shard, const char *name,
                      int argc, const char **argv, const size_t *argvlen,
                      struct hq__err *err)
{
    struct sync_call sc;
    int ret;

    ret = sync_call_init(&sc, c, shard, name, argc, argv, argvlen, err);
    if (ret == HQ_OK &&
        redisAppendCommandArgv(sc.rc, argc + 4, sc.cmd, sc.cmdlen) != REDIS_OK)
        ret = hq__err_set(err, HQ_ENOMEM, "script %s: out of memory", name);
    sync_call_release(&sc);
    return ret;
}

redisReply *
hq__sconn_eval_reply(struct hq__sconn *c, unsigned shard, int *noscript,
                     struct hq__err *err)
{
    void *r = NULL;

    (void)shard;
    *noscript = 0;
    if (c->rc == NULL) {
        hq__err_set(err, HQ_ESTORE, "script (pipelined): not connected");
        return NULL;
    }
    if (redisGetReply(c->rc, &r) != REDIS_OK)
        r = NULL;
    if (is_noscript(r)) {
        *noscript = 1;
        freeReplyObject(r);
        hq__err_set(err, HQ_ESTORE, "NOSCRIPT");
        return NULL;
    }
    return take_reply(c->rc, r, "(pipelined)", err);
}

/* ------------------------------------------------------------------------ */
/* Asynchronous connections.                                                */

static void retry_cb(evutil_socket_t fd, short what, void *arg);

int
hq__conn_init(struct hq__conn *c, struct event_base *base,
              const struct hq__store_addr *addr, const struct hq__store_ns *ns,
              const struct hq__conn_hooks *hooks, unsigned flags)
{
    struct timespec ts;

    memset(c, 0, sizeof(*c));
    c->base = base;
    c->addr = addr;
    c->ns = ns;
    if (hooks)
        c->hooks = *hooks;
    c->flags = flags;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    c->rng = ((uint64_t)(uintptr_t)c << 16) ^ (uint64_t)ts.tv_nsec ^ 0x9e3779b97f4a7c15ull;
    if (!(flags & HQ_CONN_ON_DEMAND)) {
        c->retry_ev = evtimer_new(base, retry_cb, c);
        if (c->retry_ev == NULL)
            return HQ_ENOMEM;
    }
    return HQ_OK;
}

static uint64_t
rng_next(struct hq__conn *c)
{
    /* xorshift64 */
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return c->rng;
}

static void
retry_later(struct hq__conn *c)
{
    int ms;
    struct timeval tv;

    if (c->closing || c->retry_ev == NULL)
        return;
    ms = hq__conn_backoff_ms(c->attempts, rng_next(c));
    c->attempts++; /* the attempt count; hq__conn_backoff_ms() caps it */
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

static void
on_connect(const redisAsyncContext *ac, int status)
{
    struct hq__conn *c = ac->data;
    char why[300];

    if (c == NULL || c->ac != ac)
        return;
    if (status != REDIS_OK) {
        c->ac = NULL; /* hiredis frees it after this returns */
        snprintf(why, sizeof(why), "cannot connect to redis: %s", ac->errstr);
        went_down(c, why);
        return;
    }
    c->up = 1;
    c->attempts = 0;
    if (c->hooks.up)
        c->hooks.up(c, c->hooks.arg);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    struct hq__conn *c = ac->data;
    char why[300];

    /* Dropped by hq__conn_reset() or _release(): already handled. */
    if (c == NULL || c->ac != ac)
        return;
    c->ac = NULL;
    snprintf(why, sizeof(why), "lost the connection to redis%s%s",
             status == REDIS_OK ? "" : ": ", status == REDIS_OK ? "" : ac->errstr);
    went_down(c, why);
}

static void
ignore_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    (void)r;
    (void)privdata;
}

void
hq__conn_start(struct hq__conn *c)
{
    redisAsyncContext *ac;
    char name[300], why[400];

    if (c->ac != NULL || c->closing)
        return;
    if (c->retry_ev)
        evtimer_del(c->retry_ev);
    addr_name(c->addr, name, sizeof(name));
    if (c->addr->unix_path[0])
        ac = redisAsyncConnectUnix(c->addr->unix_path);
    else
        ac = redisAsyncConnect(c->addr->host, c->addr->port);
    if (ac == NULL || ac->err || redisLibeventAttach(ac, c->base) != REDIS_OK) {
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
    if (c->addr->password[0])
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
    if (c->ac == NULL)
        return;
    drop(c);
    went_down(c, why);
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
    drop(c);
    if (c->retry_ev)
        event_free(c->retry_ev);
    c->retry_ev = NULL;
}

redisAsyncContext *
hq__conn_for_shard(struct hq__conn *c, unsigned shard)
{
    (void)shard; /* one connection serves every shard */
    if (c->ac == NULL && (c->flags & HQ_CONN_ON_DEMAND))
        hq__conn_start(c);
    if (c->ac == NULL || (c->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING)))
        return NULL;
    return c->ac;
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

    if (is_noscript(reply) && !call->resent) {
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

    if (hq__store_script(name) == NULL || argc < 0 || argc > MAX_ARGS - 4)
        return HQ_EINVAL;
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
    build_eval(name, 0, prefix, argc, argv, argvlen, cmd, cmdlen);
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
    redisAsyncContext *ac = hq__conn_for_shard(c, shard);

    if (ac == NULL ||
        redisAsyncCommandArgv(ac, fn, privdata, argc, argv, argvlen) != REDIS_OK)
        return HQ_ESTORE;
    return HQ_OK;
}
