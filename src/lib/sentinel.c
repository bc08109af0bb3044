/*
 * Asking Redis Sentinel where the master is. See sentinel_int.h.
 *
 * DESIGN: this file talks to Sentinels only, so it connects to them
 * itself: a Sentinel takes no SELECT, and its AUTH is its own ([redis]
 * sentinel_user and sentinel_password, not the url's, which are the data
 * nodes'). Whether to trust the answer is the connection layer's call
 * (hq__conn_sentinel_lookup(): the node named must say ROLE master), since
 * connecting to a data node, with AUTH and SELECT, is done in one place,
 * the connection layer (sconn.c, conn.c). A Sentinel that refuses the
 * password, or wants one, is told apart from one that is down
 * (HQ_ECONFIG), so that the message an operator reads names the key to
 * fix; the password itself is never put in a message (Redis's replies to
 * AUTH do not echo it either).
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

/* Send AUTH to the Sentinel `s`: HQ_OK, HQ_ECONFIG (refused) or HQ_ESTORE. */
static int
sentinel_auth(redisContext *c, const struct hq__store_seed *s, const char *user,
              const char *password, struct hq__err *err)
{
    redisReply *r;
    int rc = HQ_OK;

    if (user != NULL && user[0])
        r = redisCommand(c, "AUTH %s %s", user, password);
    else
        r = redisCommand(c, "AUTH %s", password);
    if (r == NULL)
        return hq__err_set(err, HQ_ESTORE, "sentinel %s:%d: auth: %s", s->host,
                           s->port, c->errstr);
    if (r->type == REDIS_REPLY_ERROR) {
        /* A Sentinel without requirepass says so ("AUTH <password> called
         * without any password configured..."): still a setting to fix. */
        if (strstr(r->str, "without any password configured") != NULL)
            rc = hq__err_set(err, HQ_ECONFIG,
                             "sentinel %s:%d has no password, but [redis] "
                             "sentinel_password is set: %s",
                             s->host, s->port, r->str);
        else
            rc = hq__err_set(err, HQ_ECONFIG,
                             "sentinel %s:%d refused the password of [redis] "
                             "sentinel_password%s%s: %s",
                             s->host, s->port, user && user[0] ? " for user " : "",
                             user && user[0] ? user : "", r->str);
    }
    freeReplyObject(r);
    return rc;
}

int
hq__sentinel_ask(const struct hq__store_seed *s, const char *name,
                 const char *user, const char *password, int timeout_ms,
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
    if (password != NULL && password[0]) {
        rc = sentinel_auth(c, s, user, password, err);
        if (rc != HQ_OK)
            goto out;
    }
    r = redisCommand(c, "SENTINEL GET-MASTER-ADDR-BY-NAME %s", name);
    if (r == NULL) {
        rc = hq__err_set(err, HQ_ESTORE, "sentinel %s:%d: %s", s->host,
                         s->port, c->errstr);
        goto out;
    }
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOAUTH", 6) == 0) {
        rc = hq__err_set(err, HQ_ECONFIG,
                         "sentinel %s:%d requires a password (%s): set [redis] "
                         "sentinel_password (and sentinel_user for an ACL user)",
                         s->host, s->port, r->str);
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
    return rc == HQ_OK || rc == HQ_ECONFIG ? rc : HQ_ESTORE;
}
