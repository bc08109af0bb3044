/*
 * The Redis store: addresses, connections, key names, and running the
 * embedded scripts. See store_int.h for the contract.
 *
 * Scripts run by EVALSHA; their SHA1 is computed here once (OpenSSL), so a
 * call costs one round trip and sends no script text. When Redis answers
 * NOSCRIPT (it restarted, or SCRIPT FLUSH), the same call is sent again as
 * EVAL, which also caches the script for the next EVALSHA. A script is
 * deterministic in its effects, so sending it again after NOSCRIPT cannot
 * apply it twice: NOSCRIPT means it did not run.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libevent.h>
#include <openssl/sha.h>

#include "scripts_int.h"
#include "store_int.h"

#define MAX_SCRIPTS 64
#define DEFAULT_TIMEOUT_MS 5000

static char script_shas[MAX_SCRIPTS][41];
static pthread_once_t shas_once = PTHREAD_ONCE_INIT;

static void
compute_shas(void)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA_DIGEST_LENGTH];

    for (size_t i = 0; hq__scripts[i].name && i < MAX_SCRIPTS; i++) {
        SHA1((const unsigned char *)hq__scripts[i].src, hq__scripts[i].len, md);
        for (int j = 0; j < SHA_DIGEST_LENGTH; j++) {
            script_shas[i][2 * j] = hex[md[j] >> 4];
            script_shas[i][2 * j + 1] = hex[md[j] & 15];
        }
        script_shas[i][40] = '\0';
    }
}

static int
script_index(const char *name)
{
    for (int i = 0; hq__scripts[i].name && i < MAX_SCRIPTS; i++)
        if (strcmp(hq__scripts[i].name, name) == 0)
            return i;
    return -1;
}

const struct hq__script *
hq__store_script(const char *name)
{
    int i = script_index(name);
    return i < 0 ? NULL : &hq__scripts[i];
}

const char *
hq__store_script_sha(const char *name)
{
    int i = script_index(name);

    if (i < 0)
        return NULL;
    pthread_once(&shas_once, compute_shas);
    return script_shas[i];
}

/* ------------------------------------------------------------------------ */
/* Addresses and names.                                                      */

/* A decimal of at most 9 digits in [lo, hi]: 0 with `*out`, or -1. */
static int
parse_int(const char *s, size_t n, int lo, int hi, int *out)
{
    int64_t v;

    if (n > 9 || hq__parse_decimal(s, n, &v) != 0 || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int
copy_part(char *dst, size_t size, const char *s, size_t n)
{
    if (n >= size)
        return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

int
hq__store_parse_url(const char *url, int timeout_ms,
                    struct hq__store_addr *addr, struct hq__err *err)
{
    const char *p, *end, *at, *slash, *colon;

    memset(addr, 0, sizeof(*addr));
    addr->port = 6379;
    addr->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
    if (url == NULL || *url == '\0')
        return hq__err_set(err, HQ_EINVAL, "empty redis url");

    if (strncmp(url, "unix://", 7) == 0) {
        const char *q = strchr(url + 7, '?');
        size_t n = q ? (size_t)(q - (url + 7)) : strlen(url + 7);

        if (n == 0 || url[7] != '/')
            return hq__err_set(err, HQ_EINVAL,
                               "redis url '%s': unix:// needs an absolute path",
                               url);
        if (copy_part(addr->unix_path, sizeof(addr->unix_path), url + 7, n))
            return hq__err_set(err, HQ_EINVAL, "redis url '%s': path too long",
                               url);
        if (q) {
            if (strncmp(q, "?db=", 4) != 0 ||
                parse_int(q + 4, strlen(q + 4), 0, 1 << 20, &addr->db))
                return hq__err_set(err, HQ_EINVAL,
                                   "redis url '%s': expected '?db=N' after the path",
                                   url);
        }
        return HQ_OK;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return hq__err_set(err, HQ_EINVAL,
                           "redis url '%s': expected redis://host:port/db or unix:///path",
                           url);
    p = url + 8;
    end = p + strlen(p);
    slash = strchr(p, '/');
    if (slash == NULL)
        slash = end;
    at = memchr(p, '@', (size_t)(slash - p));
    if (at) {
        /* [user]:password@ — Redis 6 ACL users are not supported here. */
        colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if (copy_part(addr->password, sizeof(addr->password), pw,
                      (size_t)(at - pw)))
            return hq__err_set(err, HQ_EINVAL, "redis url: password too long");
        p = at + 1;
    }
    colon = memchr(p, ':', (size_t)(slash - p));
    if (colon) {
        if (parse_int(colon + 1, (size_t)(slash - colon - 1), 1, 65535,
                      &addr->port))
            return hq__err_set(err, HQ_EINVAL, "redis url '%s': bad port",
                               url);
    } else {
        colon = slash;
    }
    if (colon == p)
        return hq__err_set(err, HQ_EINVAL, "redis url '%s': no host", url);
    if (copy_part(addr->host, sizeof(addr->host), p, (size_t)(colon - p)))
        return hq__err_set(err, HQ_EINVAL, "redis url '%s': host too long",
                           url);
    if (slash < end && slash + 1 < end &&
        parse_int(slash + 1, (size_t)(end - slash - 1), 0, 1 << 20, &addr->db))
        return hq__err_set(err, HQ_EINVAL,
                           "redis url '%s': database must be a number", url);
    return HQ_OK;
}

int
hq__store_ns_init(struct hq__store_ns *ns, const char *name, unsigned shards,
                  struct hq__err *err)
{
    if (name == NULL || *name == '\0')
        name = "hookq";
    if (strlen(name) >= sizeof(ns->ns))
        return hq__err_set(err, HQ_EINVAL, "namespace '%s' is too long", name);
    if (strpbrk(name, "{}:\n ") != NULL)
        return hq__err_set(err, HQ_EINVAL,
                           "namespace '%s' must not contain braces, ':', spaces or newlines",
                           name);
    if (shards > HQ_SHARDS_MAX)
        return hq__err_set(err, HQ_EINVAL, "shards = %u: at most %d", shards,
                           HQ_SHARDS_MAX);
    memcpy(ns->ns, name, strlen(name) + 1);
    ns->shards = shards ? shards : 1;
    return HQ_OK;
}

unsigned
hq__store_shard_of(const struct hq__store_ns *ns, const char *customer,
                   size_t len)
{
    uint32_t h = 2166136261u;

    if (ns->shards <= 1)
        return 0;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)customer[i];
        h *= 16777619u;
    }
    return h % ns->shards;
}

size_t
hq__store_prefix(const struct hq__store_ns *ns, unsigned shard, char *buf,
                 size_t size)
{
    int n = snprintf(buf, size, "{%s:%u}:", ns->ns, shard);
    return n < 0 ? 0 : (size_t)n;
}

int
hq__store_key_customer(const char *key, size_t keylen, size_t *custlen)
{
    for (size_t i = keylen; i > 0; i--) {
        if (key[i - 1] == ':') {
            if (i == 1 || i == keylen)
                return HQ_EINVAL;
            *custlen = i - 1;
            return HQ_OK;
        }
    }
    return HQ_EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Connections.                                                              */

static void
addr_name(const struct hq__store_addr *a, char *buf, size_t size)
{
    if (a->unix_path[0])
        snprintf(buf, size, "unix://%s", a->unix_path);
    else
        snprintf(buf, size, "%s:%d", a->host, a->port);
}

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
hq__store_connect(const struct hq__store_addr *addr, struct hq__err *err)
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

static void
ignore_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    (void)r;
    (void)privdata;
}

redisAsyncContext *
hq__store_connect_async(const struct hq__store_addr *addr,
                        struct event_base *base, struct hq__err *err)
{
    redisAsyncContext *ac;
    char name[300];

    addr_name(addr, name, sizeof(name));
    if (addr->unix_path[0])
        ac = redisAsyncConnectUnix(addr->unix_path);
    else
        ac = redisAsyncConnect(addr->host, addr->port);
    if (ac == NULL) {
        hq__err_set(err, HQ_ENOMEM, "cannot connect to redis at '%s': out of memory", name);
        return NULL;
    }
    if (ac->err) {
        /* Reported through the callbacks' view too; keep the detail here. */
        hq__err_set(err, HQ_ESTORE, "cannot connect to redis at '%s': %s", name,
                    ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    if (redisLibeventAttach(ac, base) != REDIS_OK) {
        hq__err_set(err, HQ_ESTORE, "cannot attach redis connection to the event loop");
        redisAsyncFree(ac);
        return NULL;
    }
    if (addr->password[0])
        redisAsyncCommand(ac, ignore_reply, NULL, "AUTH %s", addr->password);
    if (addr->db)
        redisAsyncCommand(ac, ignore_reply, NULL, "SELECT %d", addr->db);
    return ac;
}

/* ------------------------------------------------------------------------ */
/* Scripts.                                                                  */

#define MAX_ARGS 4096

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

redisReply *
hq__store_eval(redisContext *c, const char *name, const char *prefix,
               int argc, const char **argv, const size_t *argvlen,
               struct hq__err *err)
{
    const char **cmd;
    size_t *cmdlen;
    redisReply *r = NULL;

    cmd = malloc(sizeof(*cmd) * (size_t)(argc + 4));
    cmdlen = malloc(sizeof(*cmdlen) * (size_t)(argc + 4));
    if (cmd == NULL || cmdlen == NULL) {
        hq__err_set(err, HQ_ENOMEM, "script %s: out of memory", name);
        goto out;
    }
    if (build_eval(name, 0, prefix, argc, argv, argvlen, cmd, cmdlen)) {
        hq__err_set(err, HQ_EINVAL, "no script named '%s'", name);
        goto out;
    }
    r = redisCommandArgv(c, argc + 4, cmd, cmdlen);
    if (is_noscript(r)) {
        freeReplyObject(r);
        build_eval(name, 1, prefix, argc, argv, argvlen, cmd, cmdlen);
        r = redisCommandArgv(c, argc + 4, cmd, cmdlen);
    }
    r = take_reply(c, r, name, err);
out:
    free(cmd);
    free(cmdlen);
    return r;
}

int
hq__store_eval_append(redisContext *c, const char *name, const char *prefix,
                      int argc, const char **argv, const size_t *argvlen)
{
    const char **cmd;
    size_t *cmdlen;
    int rc;

    cmd = malloc(sizeof(*cmd) * (size_t)(argc + 4));
    cmdlen = malloc(sizeof(*cmdlen) * (size_t)(argc + 4));
    if (cmd == NULL || cmdlen == NULL) {
        rc = HQ_ENOMEM;
        goto out;
    }
    rc = build_eval(name, 0, prefix, argc, argv, argvlen, cmd, cmdlen);
    if (rc == HQ_OK && redisAppendCommandArgv(c, argc + 4, cmd, cmdlen) != REDIS_OK)
        rc = HQ_ENOMEM;
out:
    free(cmd);
    free(cmdlen);
    return rc;
}

redisReply *
hq__store_eval_reply(redisContext *c, int *noscript, struct hq__err *err)
{
    void *r = NULL;

    *noscript = 0;
    if (redisGetReply(c, &r) != REDIS_OK)
        r = NULL;
    if (is_noscript(r)) {
        *noscript = 1;
        freeReplyObject(r);
        hq__err_set(err, HQ_ESTORE, "NOSCRIPT");
        return NULL;
    }
    return take_reply(c, r, "(pipelined)", err);
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
hq__store_eval_async(redisAsyncContext *ac, const char *name,
                     const char *prefix, int argc, const char **argv,
                     const size_t *argvlen, redisCallbackFn *fn, void *privdata)
{
    size_t bytes = 0, n = (size_t)argc + 4;
    struct async_call *call;
    const char **cmd;
    size_t *cmdlen;
    char *p;

    if (hq__store_script(name) == NULL || argc < 0 || argc > MAX_ARGS - 4)
        return HQ_EINVAL;
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
