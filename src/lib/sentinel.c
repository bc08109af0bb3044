/*
 * Asking Redis Sentinel where the master is. See sentinel_int.h.
 *
 * DESIGN: this file talks to Sentinels only; a Sentinel needs no AUTH or
 * SELECT, so it connects to them itself. Whether to trust the answer is
 * the connection layer's call (hq__conn_sentinel_lookup(): the node named
 * must say ROLE master), since connecting to a data node, with AUTH and
 * SELECT, is done in one place, the connection layer (sconn.c, conn.c).
 */
#include <stdio.h>
#include <string.h>

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

int
hq__sentinel_ask(const struct hq__store_seed *s, const char *name,
                 int timeout_ms, struct hq__store_seed *out,
                 struct hq__err *err)
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
