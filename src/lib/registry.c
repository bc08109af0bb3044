/*
 * What the processes of a namespace record about themselves in Redis: the
 * shard count the namespace was created with, and the worker registry
 * (DESIGN §3.7 "Many hosts", hookq workers).
 *
 * DESIGN: both live under a hash tag of their own, "{ns:meta}", so that each
 * script touches one slot (Redis Cluster) and no shard's master carries
 * them. The shard count is one key, written once with SET NX GET: the first
 * process records it, every later one reads it (GET first, so that a full
 * Redis refusing writes can still answer) and refuses to go on with another
 * (a second count would send a customer's keys to two shards and break
 * per-key order). Each worker process renews a
 * hash `worker:<host>:<pid>:<started>` every second with a TTL and its
 * score in the index `workers` (Redis TIME); a listing takes the members
 * seen within HQ_WORKER_TTL_MS, so a killed process is gone from it within
 * that time, and the hash expires by itself.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "client_int.h"
#include "registry_int.h"
#include "utf8_int.h"

int
hq__registry_check_shards(redisContext *rc, const struct hq__store_ns *ns,
                          unsigned *recorded, struct hq__err *err)
{
    char key[HQ_PREFIX_MAX + 16], val[16];
    size_t n;
    redisReply *r;
    int64_t had = 0;
    int rc_;

    *recorded = 0;
    n = hq__store_prefix(ns, HQ_SHARD_META, key, sizeof(key) - 8);
    memcpy(key + n, "shards", 7);
    snprintf(val, sizeof(val), "%u", ns->shards);
    /*
     * Read first: a read works when Redis refuses writes (maxmemory), and
     * every process after the first needs no more. Then record it with
     * SET NX GET, which also reads what a process racing us recorded.
     */
    r = redisCommand(rc, "GET %s", key);
    if (r != NULL && r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        r = redisCommand(rc, "SET %s %s NX GET", key, val);
    }
    if (r == NULL)
        return hq__err_set(err, HQ_ESTORE, "cannot record the shard count in redis: %s",
                           rc->errstr[0] ? rc->errstr : "connection lost");
    if (r->type == REDIS_REPLY_ERROR) {
        rc_ = hq__err_set(err, HQ_ESTORE, "cannot record the shard count in redis: %s",
                          r->str);
        freeReplyObject(r);
        return rc_;
    }
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r); /* recorded now */
        *recorded = ns->shards;
        return HQ_OK;
    }
    if (r->type != REDIS_REPLY_STRING ||
        hq__parse_decimal(r->str, r->len, &had) != 0 || had < 1 ||
        had > HQ_SHARDS_MAX) {
        rc_ = hq__err_set(err, HQ_EPROTO, "redis key '%s' does not hold a shard count",
                          key);
        freeReplyObject(r);
        return rc_;
    }
    freeReplyObject(r);
    *recorded = (unsigned)had;
    if ((unsigned)had != ns->shards)
        return hq__err_set(err, HQ_ECONFIG,
                           "[redis] shards = %u, but namespace '%s' was created "
                           "with shards = %u (recorded in redis as '%s'): use "
                           "shards = %u, or move the queue to a new namespace",
                           ns->shards, ns->ns, (unsigned)had, key, (unsigned)had);
    return HQ_OK;
}

int
hq_client_check_shards(hq_client *c, unsigned *recorded)
{
    redisContext *rc_ = hq__sconn_for_shard(&c->conn, HQ_SHARD_META, &c->err);
    unsigned had = 0;
    int rc;

    if (rc_ == NULL)
        rc = HQ_ESTORE;
    else
        rc = hq__registry_check_shards(rc_, &c->ns, &had, &c->err);
    if (recorded)
        *recorded = had;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The worker registry.                                                      */

void
hq_worker_list_release(struct hq_worker_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].host);
        free(l->items[i].version);
    }
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static int64_t
elem_i64(const redisReply *e)
{
    int64_t v = 0;

    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING &&
        hq__parse_decimal(e->str, e->len, &v) != 0)
        v = 0;
    return v;
}

static char *
elem_str(const redisReply *e)
{
    const char *s = e->type == REDIS_REPLY_STRING ? e->str : "";
    size_t len = e->type == REDIS_REPLY_STRING ? e->len : 0;
    char *d = malloc(len + 1);

    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

int
hq_client_workers(hq_client *c, struct hq_worker_list *out)
{
    char ttl[24];
    const char *argv[1] = {ttl};
    size_t lens[1];
    redisReply *r;
    int rc = HQ_OK;

    memset(out, 0, sizeof(*out));
    snprintf(ttl, sizeof(ttl), "%d", HQ_WORKER_TTL_MS);
    lens[0] = strlen(ttl);
    r = hq__sconn_eval(&c->conn, HQ_SHARD_META, "workers", 1, argv, lens, &c->err);
    if (r == NULL)
        return strstr(c->err.msg, "out of memory") ? HQ_ENOMEM : HQ_ESTORE;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        freeReplyObject(r);
        return hq__err_set(&c->err, HQ_EPROTO, "workers: unexpected reply from redis");
    }
    out->time_ms = elem_i64(r->element[0]);
    if (r->elements > 1) {
        out->items = calloc(r->elements - 1, sizeof(*out->items));
        if (out->items == NULL)
            rc = HQ_ENOMEM;
    }
    for (size_t i = 1; rc == HQ_OK && i < r->elements; i++) {
        const redisReply *f = r->element[i];
        struct hq_worker_info *w = &out->items[out->n];

        if (f->type != REDIS_REPLY_ARRAY || f->elements != 7) {
            rc = HQ_EPROTO;
            break;
        }
        out->n++;
        w->host = elem_str(f->element[0]);
        w->pid = elem_i64(f->element[1]);
        w->version = elem_str(f->element[2]);
        w->started_ms = elem_i64(f->element[3]);
        w->loops = elem_i64(f->element[4]);
        w->in_flight = elem_i64(f->element[5]);
        w->last_seen_ms = elem_i64(f->element[6]);
        if (!w->host || !w->version)
            rc = HQ_ENOMEM;
    }
    freeReplyObject(r);
    if (rc != HQ_OK) {
        hq_worker_list_release(out);
        return hq__err_set(&c->err, rc, rc == HQ_ENOMEM ? "workers: out of memory"
                                                        : "workers: unexpected reply from redis");
    }
    return HQ_OK;
}

void
hq__rfc3339_ms(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms < 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, size, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ms % 1000));
}

static json_t *
text(const char *s)
{
    char *clean = hq__utf8_sanitize(s, strlen(s), NULL);
    json_t *v = clean ? json_string_nocheck(clean) : NULL;

    free(clean);
    return v;
}

char *
hq_worker_list_json(const struct hq_worker_list *l)
{
    json_t *arr = json_array();
    char *out = NULL;
    int bad = arr == NULL;

    for (size_t i = 0; !bad && i < l->n; i++) {
        const struct hq_worker_info *w = &l->items[i];
        char started[40], seen[40];
        json_t *o;

        hq__rfc3339_ms(w->started_ms, started, sizeof(started));
        hq__rfc3339_ms(w->last_seen_ms, seen, sizeof(seen));
        o = json_pack("{so sI so ss sI sI ss}", "host", text(w->host),
                      "pid", (json_int_t)w->pid, "version", text(w->version),
                      "started", started, "loops", (json_int_t)w->loops,
                      "in_flight", (json_int_t)w->in_flight, "last_seen", seen);
        bad = o == NULL || json_array_append_new(arr, o) != 0;
    }
    if (!bad)
        out = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(arr);
    return out;
}
