/*
 * Finding the master through Redis Sentinel. See sentinel_int.h.
 *
 * DESIGN: a Sentinel's answer can be stale for a moment after a failover
 * (the old master restarted as a replica, or the new one not yet
 * reconfigured), so hookq never trusts it alone: the node named must say
 * ROLE master before hookq writes to it. A Sentinel that is down, does not
 * know the name, or names a non-master is passed over for the next one;
 * when none gives a master, the caller fails this attempt and asks again
 * after its reconnect backoff, so a failover in progress is waited out.
 */
#include <stdio.h>
#include <string.h>

#include "conn_int.h"
#include "sentinel_int.h"

int
hq__sentinel_parse_addr(const redisReply *r, struct hq__store_seed *out)
{
    const redisReply *h, *p;
    int64_t port;

    if (r == NULL)
        return HQ_EPROTO;
    if (r->type == REDIS_REPLY_NIL)
        return HQ_ENOTFOUND;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return HQ_EPROTO;
    h = r->element[0];
    p = r->element[1];
    if (h->type != REDIS_REPLY_STRING || h->len == 0 ||
        h->len >= sizeof(out->host) || p->type != REDIS_REPLY_STRING ||
        hq__parse_decimal(p->str, p->len, &port) != 0 || port < 1 ||
        port > 65535)
        return HQ_EPROTO;
    memcpy(out->host, h->str, h->len);
    out->host[h->len] = '\0';
    out->port = (int)port;
    return HQ_OK;
}

int
hq__sentinel_role_is_master(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
           r->element[0]->type == REDIS_REPLY_STRING &&
           r->element[0]->len == 6 && memcmp(r->element[0]->str, "master", 6) == 0;
}

/* Ask one Sentinel; HQ_OK with `*out`, or an error with the reason. */
static int
ask_sentinel(const struct hq__store_seed *s, const char *name, int timeout_ms,
             struct hq__store_seed *out, struct hq__err *err)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(s->host, s->port, tv);
    redisReply *r = NULL;
    int rc;

    if (c == NULL || c->err) {
        rc = hq__err_set(err, HQ_ESTORE, "sentinel %s:%d: %s", s->host,
                         s->port, c ? c->errstr : "out of memory");
        goto out;
    }
    redisSetTimeout(c, tv);
    r = redisCommand(c, "SENTINEL GET-MASTER-ADDR-BY-NAME %s", name);
    if (r == NULL) {
        rc = hq__err_set(err, HQ_ESTORE, "sentinel %s:%d: %s", s->host,
                         s->port, c->errstr);
        goto out;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        rc = hq__err_set(err, HQ_ESTORE, "sentinel %s:%d: %s", s->host,
                         s->port, r->str);
        goto out;
    }
    rc = hq__sentinel_parse_addr(r, out);
    if (rc == HQ_ENOTFOUND)
        hq__err_set(err, HQ_ESTORE, "sentinel %s:%d does not know master '%s'",
                    s->host, s->port, name);
    else if (rc != HQ_OK)
        hq__err_set(err, HQ_ESTORE,
                    "sentinel %s:%d: unexpected answer to get-master-addr-by-name",
                    s->host, s->port);
out:
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return rc == HQ_OK ? HQ_OK : HQ_ESTORE;
}

/* Connect to `m` as `addr` says and check ROLE; HQ_OK when a master. */
static int
check_master(const struct hq__store_seed *m, const struct hq__store_addr *addr,
             const char *name, struct hq__err *err)
{
    struct hq__store_addr a = *addr;
    redisContext *c;
    redisReply *r;
    int rc = HQ_OK;

    memcpy(a.host, m->host, sizeof(a.host));
    a.port = m->port;
    a.unix_path[0] = '\0';
    a.nsentinels = 0; /* connect to the node itself */
    c = hq__conn_connect_sync(&a, err);
    if (c == NULL)
        return HQ_ESTORE;
    r = redisCommand(c, "ROLE");
    if (!hq__sentinel_role_is_master(r))
        rc = hq__err_set(err, HQ_ESTORE,
                         "the sentinels name %s:%d as master '%s', but it is "
                         "not a master (%s): a failover is under way",
                         m->host, m->port, name,
                         r == NULL ? c->errstr
                         : r->type == REDIS_REPLY_ERROR ? r->str
                         : r->type == REDIS_REPLY_ARRAY && r->elements &&
                                 r->element[0]->type == REDIS_REPLY_STRING
                             ? r->element[0]->str
                             : "unexpected answer to ROLE");
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return rc;
}

int
hq__sentinel_lookup(const struct hq__store_seed *sentinels, unsigned n,
                    const char *name, const struct hq__store_addr *addr,
                    struct hq__store_seed *master, struct hq__err *err)
{
    if (n == 0)
        return hq__err_set(err, HQ_EINVAL, "no sentinels to ask");
    for (unsigned i = 0; i < n; i++) {
        if (ask_sentinel(&sentinels[i], name, addr->timeout_ms, master, err) !=
            HQ_OK)
            continue;
        if (check_master(master, addr, name, err) == HQ_OK)
            return HQ_OK;
    }
    return HQ_ESTORE; /* `err` holds the last reason */
}
