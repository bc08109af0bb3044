/*
 * Administration of the queue on a client handle: hold and release keys and
 * customers, tokens, dead letters, stats, keys and peek.
 *
 * DESIGN: every change is one script of src/lib/scripts/ (hold, release,
 * release_customer, token_set, token_del, dlq_retry, dlq_drop), so it is one
 * atomic transition that keeps the invariants of docs/queue-semantics.md.
 * Reads are scripts too (stats, keys, peek, dlq_list, dlq_show), so each
 * shard's answer is one consistent snapshot; across shards they are not
 * (there is no cross-slot atomicity in a Redis Cluster). A key or customer
 * names its shard; a dead letter's id "<S>-<n>" names its shard too, and
 * anything that spans the queue (stats, keys, dlq list and --all) visits
 * every shard in turn.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "admin_int.h"
#include "client_int.h"
#include "record_int.h"
#include "utf8_int.h"

/* How many keys of one shard `keys` and `stats` look at, at most. */
#define KEYS_SCAN_LIMIT 10000
/* Dead letters per script call for list and --all. */
#define DLQ_PAGE 500

/* ------------------------------------------------------------------------ */
/* Pure helpers.                                                             */

static const char *const state_names[] = {"idle", "ready", "active", "parked",
                                          "held"};

const char *
hq_key_state_name(int state)
{
    if (state < 0 || (size_t)state >= HQ_ARRAY_SIZE(state_names))
        return "?";
    return state_names[state];
}

int
hq_key_state_parse(const char *name)
{
    for (size_t i = 0; i < HQ_ARRAY_SIZE(state_names); i++)
        if (name && strcmp(name, state_names[i]) == 0)
            return (int)i;
    return -1;
}

int
hq__job_id_shard(const char *id, unsigned shards, unsigned *shard)
{
    const char *dash = strchr(id, '-');
    int64_t s, n;

    /* Digits only on both sides: strtoll() took blanks and clamped. */
    if (dash == NULL || hq__parse_decimal(id, (size_t)(dash - id), &s) != 0 ||
        hq__parse_decimal(dash + 1, strlen(dash + 1), &n) != 0 || n <= 0 ||
        (uint64_t)s >= shards)
        return HQ_EINVAL;
    *shard = (unsigned)s;
    return HQ_OK;
}

int
hq__admin_check_key(const char *key, size_t *custlen, struct hq__err *err)
{
    size_t len = key ? strlen(key) : 0;

    if (len == 0)
        return hq__err_set(err, HQ_EINVAL, "empty key");
    if (strchr(key, '\n'))
        return hq__err_set(err, HQ_EINVAL, "key contains a newline");
    if (hq__store_key_customer(key, len, custlen) != HQ_OK)
        return hq__err_set(err, HQ_EINVAL,
                           "key '%s' is not CUSTOMER:CODE", key);
    return HQ_OK;
}

static char *
dupn(const char *s, size_t len)
{
    char *d = malloc(len + 1);

    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* ------------------------------------------------------------------------ */
/* Calling the scripts.                                                      */

/* Run `script` on shard `shard` with NUL-terminated arguments. */
static redisReply *
call_shard(hq_client *c, const char *script, unsigned shard, int argc,
           const char **argv)
{
    size_t lens[64] = {0}; /* zeroed: gcc -O3 cannot see argc >= 0 bounds its reads */

    if (argc > (int)HQ_ARRAY_SIZE(lens)) {
        hq__err_set(&c->err, HQ_EINVAL, "%s: too many arguments", script);
        return NULL;
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return hq__sconn_eval(&c->conn, shard, script, argc, argv, lens, &c->err);
}

/* The same, on the shard of `customer`. */
static redisReply *
call_customer(hq_client *c, const char *script, const char *customer,
              size_t custlen, int argc, const char **argv)
{
    unsigned shard = hq__store_shard_of(&c->ns, customer, custlen);

    return call_shard(c, script, shard, argc, argv);
}

/* The error of a call that returned NULL: out of memory, or Redis. */
static int
call_failed(hq_client *c)
{
    return strstr(c->err.msg, "out of memory") ? HQ_ENOMEM : HQ_ESTORE;
}

static int
bad_reply(hq_client *c, redisReply *r, const char *what)
{
    freeReplyObject(r);
    return hq__err_set(&c->err, HQ_EPROTO, "%s: unexpected reply from redis",
                       what);
}

static int
is_array(const redisReply *r, size_t min)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= min;
}

static int64_t
int_at(const redisReply *r, size_t i)
{
    const redisReply *e = r->element[i];
    int64_t v = 0;

    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING)
        hq__parse_i64(e->str, e->len, &v);
    return v;
}

/* A string element as a new NUL-terminated string ("" for nil). */
static char *
str_at(const redisReply *r, size_t i)
{
    const redisReply *e = r->element[i];

    if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS)
        return dupn(e->str, e->len);
    if (e->type == REDIS_REPLY_INTEGER) {
        char buf[24];

        snprintf(buf, sizeof(buf), "%lld", e->integer);
        return dupn(buf, strlen(buf));
    }
    return dupn("", 0);
}

/* ------------------------------------------------------------------------ */
/* Hold and release.                                                         */

int
hq_client_hold(hq_client *c, const char *key, const char *reason, int *status)
{
    const char *argv[2];
    redisReply *r;
    size_t custlen;
    int rc;

    rc = hq__admin_check_key(key, &custlen, &c->err);
    if (rc != HQ_OK)
        return rc;
    argv[0] = key;
    argv[1] = reason && reason[0] ? reason : "operator";
    if (strchr(argv[1], '\n'))
        return hq__err_set(&c->err, HQ_EINVAL, "hold reason contains a newline");
    r = call_customer(c, "hold", key, custlen, 2, argv);
    if (r == NULL)
        return call_failed(c);
    if (!is_array(r, 2))
        return bad_reply(c, r, "hold");
    switch (int_at(r, 0)) {
    case 0:
        rc = hq__err_set(&c->err, HQ_ENOTFOUND,
                         "cannot hold '%s': nothing queued", key);
        break;
    case 1:
        if (status)
            *status = HQ_HOLD_DONE;
        break;
    case 2:
        if (status)
            *status = HQ_HOLD_ALREADY;
        break;
    case 3:
        if (status)
            *status = HQ_HOLD_PENDING;
        break;
    default:
        return bad_reply(c, r, "hold");
    }
    freeReplyObject(r);
    return rc;
}

int
hq_client_release(hq_client *c, const char *key, int *status)
{
    const char *argv[1];
    redisReply *r;
    size_t custlen;
    int rc;

    rc = hq__admin_check_key(key, &custlen, &c->err);
    if (rc != HQ_OK)
        return rc;
    argv[0] = key;
    r = call_customer(c, "release", key, custlen, 1, argv);
    if (r == NULL)
        return call_failed(c);
    if (!is_array(r, 2) || r->element[1]->type != REDIS_REPLY_STRING)
        return bad_reply(c, r, "release");
    switch (int_at(r, 0)) {
    case 0:
        rc = hq__err_set(&c->err, HQ_ENOTFOUND,
                         "cannot release '%s': nothing queued", key);
        break;
    case 1:
        if (status)
            *status = HQ_RELEASE_DONE;
        break;
    case 2:
        if (status)
            *status = HQ_RELEASE_CANCELLED;
        break;
    case 3:
        rc = hq__err_set(&c->err, HQ_EINVAL,
                         "cannot release '%s': it is not held (it is %.*s)",
                         key, (int)r->element[1]->len, r->element[1]->str);
        break;
    default:
        return bad_reply(c, r, "release");
    }
    freeReplyObject(r);
    return rc;
}

static int
check_customer(hq_client *c, const char *customer)
{
    if (customer == NULL || customer[0] == '\0')
        return hq__err_set(&c->err, HQ_EINVAL, "empty customer");
    if (strchr(customer, '\n'))
        return hq__err_set(&c->err, HQ_EINVAL, "customer contains a newline");
    return HQ_OK;
}

int
hq_client_release_customer(hq_client *c, const char *customer,
                           size_t *released)
{
    const char *argv[1] = {customer};
    redisReply *r;
    int rc;

    rc = check_customer(c, customer);
    if (rc != HQ_OK)
        return rc;
    r = call_customer(c, "release_customer", customer, strlen(customer), 1,
                      argv);
    if (r == NULL)
        return call_failed(c);
    if (!is_array(r, 2) || r->element[1]->type != REDIS_REPLY_STRING)
        return bad_reply(c, r, "release_customer");
    if (released)
        *released = (size_t)int_at(r, 0);
    if (int_at(r, 0) == 0 && r->element[1]->len == 0)
        rc = hq__err_set(&c->err, HQ_ENOTFOUND,
                         "cannot release customer '%s': it is not held",
                         customer);
    freeReplyObject(r);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Tokens.                                                                   */

int
hq_client_token_set(hq_client *c, const char *customer, const char *token,
                    size_t *released)
{
    const char *argv[2] = {customer, token};
    redisReply *r;
    int rc;

    rc = check_customer(c, customer);
    if (rc != HQ_OK)
        return rc;
    if (token == NULL || token[0] == '\0')
        return hq__err_set(&c->err, HQ_EINVAL, "empty token");
    if (strpbrk(token, "\r\n"))
        return hq__err_set(&c->err, HQ_EINVAL, "token contains a newline");
    for (const char *p = token; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return hq__err_set(&c->err, HQ_EINVAL,
                               "token contains a control character");
    if (strlen(token) > HQ_TOKEN_MAX)
        return hq__err_set(&c->err, HQ_EINVAL,
                           "token is longer than %d bytes", HQ_TOKEN_MAX);
    r = call_customer(c, "token_set", customer, strlen(customer), 2, argv);
    if (r == NULL)
        return call_failed(c);
    if (!is_array(r, 2))
        return bad_reply(c, r, "token_set");
    if (released)
        *released = (size_t)int_at(r, 0);
    freeReplyObject(r);
    return HQ_OK;
}

int
hq_client_token_del(hq_client *c, const char *customer)
{
    const char *argv[1] = {customer};
    redisReply *r;
    int rc;

    rc = check_customer(c, customer);
    if (rc != HQ_OK)
        return rc;
    r = call_customer(c, "token_del", customer, strlen(customer), 1, argv);
    if (r == NULL)
        return call_failed(c);
    if (r->type != REDIS_REPLY_INTEGER)
        return bad_reply(c, r, "token_del");
    if (r->integer == 0)
        rc = hq__err_set(&c->err, HQ_ENOTFOUND,
                         "customer '%s' has no token", customer);
    freeReplyObject(r);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Dead letters.                                                             */

void
hq_dead_letter_release(struct hq_dead_letter *d)
{
    if (d == NULL)
        return;
    free(d->id);
    free(d->key);
    free(d->customer);
    free(d->error);
    free(d->webhook_id);
    free(d->body);
    memset(d, 0, sizeof(*d));
}

void
hq_dead_letters_release(struct hq_dead_letters *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        hq_dead_letter_release(&l->items[i]);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static int
dead_older(const void *a, const void *b)
{
    const struct hq_dead_letter *x = a, *y = b;

    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms ? -1 : 1;
    if (x->shard != y->shard)
        return x->shard < y->shard ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Append one page reply {total, 7 per dead letter} of shard `s` to `l`. */
static int
dlq_page_take(hq_client *c, redisReply *r, unsigned s, size_t *cap,
              struct hq_dead_letters *l, size_t *got)
{
    size_t n = (r->elements - 1) / 7;

    *got = n;
    if (l->n + n > *cap) {
        size_t ncap = (l->n + n) * 2;
        struct hq_dead_letter *items = realloc(l->items, ncap * sizeof(*items));

        if (items == NULL)
            return hq__err_set(&c->err, HQ_ENOMEM, "dlq list: out of memory");
        l->items = items;
        *cap = ncap;
    }
    for (size_t i = 0; i < n; i++) {
        struct hq_dead_letter *d = &l->items[l->n];
        size_t b = 1 + i * 7, custlen;

        memset(d, 0, sizeof(*d));
        d->id = str_at(r, b);
        d->key = str_at(r, b + 1);
        d->seq = int_at(r, b + 2);
        d->attempts = int_at(r, b + 3);
        d->at_ms = int_at(r, b + 4);
        d->received_at_ms = int_at(r, b + 5);
        d->error = str_at(r, b + 6);
        d->shard = s;
        l->n++;
        if (d->id == NULL || d->key == NULL || d->error == NULL)
            return hq__err_set(&c->err, HQ_ENOMEM, "dlq list: out of memory");
        if (hq__store_key_customer(d->key, strlen(d->key), &custlen) != HQ_OK)
            custlen = 0;
        d->customer = dupn(d->key, custlen);
        if (d->customer == NULL)
            return hq__err_set(&c->err, HQ_ENOMEM, "dlq list: out of memory");
    }
    return HQ_OK;
}

int
hq_client_dlq_list(hq_client *c, size_t limit, struct hq_dead_letters *out)
{
    size_t cap = 0;
    int rc = HQ_OK;

    memset(out, 0, sizeof(*out));
    for (unsigned s = 0; s < c->ns.shards && rc == HQ_OK; s++) {
        size_t start = 0;

        for (;;) {
            char a0[24], a1[24];
            const char *argv[2] = {a0, a1};
            redisReply *r;
            size_t got;

            snprintf(a0, sizeof(a0), "%zu", start);
            snprintf(a1, sizeof(a1), "%d", DLQ_PAGE);
            r = call_shard(c, "dlq_list", s, 2, argv);
            if (r == NULL) {
                rc = call_failed(c);
                break;
            }
            if (!is_array(r, 1) || (r->elements - 1) % 7 != 0) {
                rc = bad_reply(c, r, "dlq list");
                break;
            }
            if (start == 0)
                out->total += (size_t)int_at(r, 0);
            rc = dlq_page_take(c, r, s, &cap, out, &got);
            freeReplyObject(r);
            if (rc != HQ_OK || got < DLQ_PAGE)
                break;
            start += got;
        }
    }
    if (rc != HQ_OK) {
        hq_dead_letters_release(out);
        return rc;
    }
    if (out->n > 1)
        qsort(out->items, out->n, sizeof(*out->items), dead_older);
    if (limit > 0 && out->n > limit) {
        for (size_t i = limit; i < out->n; i++)
            hq_dead_letter_release(&out->items[i]);
        out->n = limit;
    }
    return HQ_OK;
}

/*
 * The shards to look in for dead letter `id`: the one its id names, or
 * every shard when the id does not name one (it is then most likely no
 * dead letter at all, but we do not guess).
 */
static void
id_shards(hq_client *c, const char *id, unsigned *first, unsigned *last)
{
    unsigned s;

    if (hq__job_id_shard(id, c->ns.shards, &s) == HQ_OK) {
        *first = s;
        *last = s + 1;
    } else {
        *first = 0;
        *last = c->ns.shards;
    }
}

static int
check_id(hq_client *c, const char *id)
{
    if (id == NULL || id[0] == '\0')
        return hq__err_set(&c->err, HQ_EINVAL, "empty dead letter id");
    if (strchr(id, '\n'))
        return hq__err_set(&c->err, HQ_EINVAL, "dead letter id contains a newline");
    return HQ_OK;
}

int
hq_client_dlq_show(hq_client *c, const char *id, struct hq_dead_letter *out)
{
    const char *argv[1] = {id};
    unsigned first, last;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = check_id(c, id);
    if (rc != HQ_OK)
        return rc;
    id_shards(c, id, &first, &last);
    for (unsigned s = first; s < last; s++) {
        redisReply *r = call_shard(c, "dlq_show", s, 1, argv);
        struct hq__record rec;
        size_t custlen;

        if (r == NULL)
            return call_failed(c);
        if (!is_array(r, 0))
            return bad_reply(c, r, "dlq show");
        if (r->elements == 0) {
            freeReplyObject(r);
            continue;
        }
        if (r->elements != 6 || r->element[2]->type != REDIS_REPLY_STRING ||
            hq__record_parse(r->element[2]->str, r->element[2]->len, &rec) != HQ_OK)
            return bad_reply(c, r, "dlq show");
        out->id = dupn(id, strlen(id));
        out->key = str_at(r, 0);
        out->customer = str_at(r, 1);
        out->error = str_at(r, 3);
        out->attempts = int_at(r, 4);
        out->at_ms = int_at(r, 5);
        out->seq = rec.seq;
        out->received_at_ms = rec.received_at_ms;
        out->webhook_id = dupn(rec.webhook_id, rec.webhook_id_len);
        out->body = dupn(rec.body, rec.body_len);
        out->body_len = rec.body_len;
        out->shard = s;
        freeReplyObject(r);
        if (out->customer && out->customer[0] == '\0' && out->key &&
            hq__store_key_customer(out->key, strlen(out->key), &custlen) == HQ_OK) {
            free(out->customer);
            out->customer = dupn(out->key, custlen);
        }
        if (!out->id || !out->key || !out->customer || !out->error ||
            !out->webhook_id || !out->body) {
            hq_dead_letter_release(out);
            return hq__err_set(&c->err, HQ_ENOMEM, "dlq show: out of memory");
        }
        return HQ_OK;
    }
    return hq__err_set(&c->err, HQ_ENOTFOUND, "no dead letter '%s'", id);
}

/* Run dlq_retry or dlq_drop on one id; HQ_ENOTFOUND when it is none. */
static int
dlq_one(hq_client *c, const char *script, const char *id)
{
    const char *argv[1] = {id};
    unsigned first, last;
    int rc;

    rc = check_id(c, id);
    if (rc != HQ_OK)
        return rc;
    id_shards(c, id, &first, &last);
    for (unsigned s = first; s < last; s++) {
        redisReply *r = call_shard(c, script, s, 1, argv);
        size_t n;

        if (r == NULL)
            return call_failed(c);
        if (!is_array(r, 0))
            return bad_reply(c, r, script);
        n = r->elements;
        freeReplyObject(r);
        if (n > 0)
            return HQ_OK;
    }
    return hq__err_set(&c->err, HQ_ENOTFOUND, "no dead letter '%s'", id);
}

int
hq_client_dlq_retry(hq_client *c, const char *id)
{
    return dlq_one(c, "dlq_retry", id);
}

int
hq_client_dlq_drop(hq_client *c, const char *id)
{
    return dlq_one(c, "dlq_drop", id);
}

/*
 * Apply `script` to every dead letter of every shard: a page of ids at a
 * time, oldest first, each call one atomic step. Each call removes its ids
 * from the list whatever happens, so the loop ends even on stray ids. It
 * stops after as many ids as the list held at the start, so that jobs
 * retried and dead-lettered again meanwhile are not retried in a loop.
 */
/* Dead letters in every shard, for progress; 0 when unknown. */
static size_t
dlq_count(hq_client *c)
{
    size_t total = 0;

    for (unsigned s = 0; s < c->ns.shards; s++) {
        char key[HQ_PREFIX_MAX + 8];
        redisReply *r;

        redisContext *rc = hq__sconn_for_shard(&c->conn, s, &c->err);

        if (rc == NULL)
            return 0;
        hq__store_prefix(&c->ns, s, key, sizeof(key) - 4);
        memcpy(key + strlen(key), "dlq", 4);
        r = redisCommand(rc, "LLEN %s", key);
        if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
            total += (size_t)r->integer;
        if (r != NULL)
            freeReplyObject(r);
    }
    return total;
}

static int
dlq_all(hq_client *c, const char *script, size_t *count)
{
    size_t total = 0, expect = c->progress ? dlq_count(c) : 0;
    const char *what = strcmp(script, "dlq_retry") == 0 ? "retried" : "dropped";

    for (unsigned s = 0; s < c->ns.shards; s++) {
        size_t budget = 0, seen = 0;

        for (int first = 1; first || seen < budget; first = 0) {
            char a0[8], a1[24];
            const char *largv[2] = {a0, a1};
            const char *argv[64];
            redisReply *page, *r;
            size_t n;

            snprintf(a0, sizeof(a0), "0");
            snprintf(a1, sizeof(a1), "%d", DLQ_PAGE);
            page = call_shard(c, "dlq_list", s, 2, largv);
            if (page == NULL)
                return call_failed(c);
            if (!is_array(page, 1) || (page->elements - 1) % 7 != 0)
                return bad_reply(c, page, "dlq list");
            if (first)
                budget = (size_t)int_at(page, 0);
            n = (page->elements - 1) / 7;
            if (n > budget - seen)
                n = budget - seen;
            if (n == 0) {
                freeReplyObject(page);
                break;
            }
            /* call_shard takes at most 64 arguments: go by 64. */
            for (size_t i = 0; i < n; i += HQ_ARRAY_SIZE(argv)) {
                size_t k = n - i < HQ_ARRAY_SIZE(argv) ? n - i : HQ_ARRAY_SIZE(argv);

                for (size_t j = 0; j < k; j++)
                    argv[j] = page->element[1 + (i + j) * 7]->str;
                r = call_shard(c, script, s, (int)k, argv);
                if (r == NULL) {
                    freeReplyObject(page);
                    return call_failed(c);
                }
                if (is_array(r, 0))
                    total += r->elements / 2;
                freeReplyObject(r);
            }
            if (c->progress)
                c->progress(what, total, expect > total ? expect : total,
                            c->progress_arg);
            seen += n;
            freeReplyObject(page);
        }
    }
    if (count)
        *count = total;
    return HQ_OK;
}

int
hq_client_dlq_retry_all(hq_client *c, size_t *n)
{
    return dlq_all(c, "dlq_retry", n);
}

int
hq_client_dlq_drop_all(hq_client *c, size_t *n)
{
    return dlq_all(c, "dlq_drop", n);
}

/* ------------------------------------------------------------------------ */
/* Keys and peek.                                                            */

static void
key_info_release(struct hq_key_info *k)
{
    free(k->key);
    free(k->reason);
    free(k->error);
    memset(k, 0, sizeof(*k));
}

void
hq_key_list_release(struct hq_key_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        key_info_release(&l->items[i]);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static int
deeper(const void *a, const void *b)
{
    const struct hq_key_info *x = a, *y = b;

    if (x->depth != y->depth)
        return x->depth > y->depth ? -1 : 1;
    return strcmp(x->key, y->key);
}

/* Collect the top keys of every shard into `l`, then keep the top_n. */
static int
keys_collect(hq_client *c, int state, size_t top_n, struct hq_key_list *l)
{
    char top[24], lim[24];
    const char *argv[3];
    size_t cap = 0;

    memset(l, 0, sizeof(*l));
    snprintf(top, sizeof(top), "%zu", top_n);
    snprintf(lim, sizeof(lim), "%d", KEYS_SCAN_LIMIT);
    argv[0] = state == HQ_KEY_IDLE ? "" : hq_key_state_name(state);
    argv[1] = top;
    argv[2] = lim;
    for (unsigned s = 0; s < c->ns.shards; s++) {
        redisReply *r = call_shard(c, "keys", s, 3, argv);
        size_t n;

        if (r == NULL)
            return call_failed(c);
        if (!is_array(r, 3) || (r->elements - 3) % 7 != 0)
            return bad_reply(c, r, "keys");
        if (int_at(r, 2) > l->time_ms)
            l->time_ms = int_at(r, 2);
        l->total += (size_t)int_at(r, 0);
        if ((size_t)int_at(r, 1) < (size_t)int_at(r, 0))
            l->truncated = 1;
        n = (r->elements - 3) / 7;
        if (l->n + n > cap) {
            size_t ncap = (l->n + n) * 2;
            struct hq_key_info *items = realloc(l->items, ncap * sizeof(*items));

            if (items == NULL) {
                freeReplyObject(r);
                return hq__err_set(&c->err, HQ_ENOMEM, "keys: out of memory");
            }
            l->items = items;
            cap = ncap;
        }
        for (size_t i = 0; i < n; i++) {
            struct hq_key_info *k = &l->items[l->n++];
            size_t b = 3 + i * 7;
            char *st = str_at(r, b + 1);

            k->key = str_at(r, b);
            k->state = st ? hq_key_state_parse(st) : -1;
            free(st);
            k->depth = int_at(r, b + 2);
            k->attempts = int_at(r, b + 3);
            k->when_ms = int_at(r, b + 4);
            k->reason = str_at(r, b + 5);
            k->error = str_at(r, b + 6);
            if (!k->key || !k->reason || !k->error) {
                freeReplyObject(r);
                return hq__err_set(&c->err, HQ_ENOMEM, "keys: out of memory");
            }
        }
        freeReplyObject(r);
    }
    if (l->n > 1)
        qsort(l->items, l->n, sizeof(*l->items), deeper);
    if (l->n > top_n) {
        for (size_t i = top_n; i < l->n; i++)
            key_info_release(&l->items[i]);
        l->n = top_n;
    }
    return HQ_OK;
}

int
hq_client_keys(hq_client *c, int state, size_t top_n, struct hq_key_list *out)
{
    int rc;

    if (state < HQ_KEY_IDLE || state > HQ_KEY_HELD) {
        memset(out, 0, sizeof(*out));
        return hq__err_set(&c->err, HQ_EINVAL, "keys: unknown state %d", state);
    }
    rc = keys_collect(c, state, top_n, out);
    if (rc != HQ_OK)
        hq_key_list_release(out);
    return rc;
}

void
hq_peek_release(struct hq_peek *p)
{
    if (p == NULL)
        return;
    key_info_release(&p->key);
    for (size_t i = 0; i < p->n; i++) {
        free(p->jobs[i].id);
        free(p->jobs[i].webhook_id);
        free(p->jobs[i].body);
    }
    free(p->jobs);
    memset(p, 0, sizeof(*p));
}

static int
peek_take(hq_client *c, const char *key, redisReply *r, struct hq_peek *out)
{
    const redisReply *recs = r->element[7];
    int state;

    if (r->element[0]->type != REDIS_REPLY_STRING ||
        recs->type != REDIS_REPLY_ARRAY)
        return HQ_EPROTO;
    state = r->element[0]->len == 0 ? HQ_KEY_IDLE : -1;
    if (state < 0) {
        char *st = str_at(r, 0);

        state = st ? hq_key_state_parse(st) : -1;
        free(st);
    }
    out->key.key = dupn(key, strlen(key));
    out->key.state = state;
    out->key.depth = int_at(r, 1);
    out->key.attempts = int_at(r, 2);
    out->key.when_ms = int_at(r, 3);
    /* A held key's reason, else an active key's pending hold. */
    out->key.reason = str_at(r, state == HQ_KEY_HELD ? 4 : 5);
    out->key.error = str_at(r, 6);
    if (!out->key.key || !out->key.reason || !out->key.error)
        return HQ_ENOMEM;
    if (state != HQ_KEY_ACTIVE && state != HQ_KEY_HELD) {
        free(out->key.reason);
        out->key.reason = dupn("", 0);
        if (!out->key.reason)
            return HQ_ENOMEM;
    }
    if (recs->elements == 0)
        return HQ_OK;
    out->jobs = calloc(recs->elements, sizeof(*out->jobs));
    if (out->jobs == NULL)
        return HQ_ENOMEM;
    for (size_t i = 0; i < recs->elements; i++) {
        struct hq_peek_job *j = &out->jobs[i];
        struct hq__record rec;

        if (recs->element[i]->type != REDIS_REPLY_STRING ||
            hq__record_parse(recs->element[i]->str, recs->element[i]->len,
                             &rec) != HQ_OK)
            return HQ_EPROTO;
        out->n++;
        j->id = dupn(rec.id, rec.id_len);
        j->seq = rec.seq;
        j->received_at_ms = rec.received_at_ms;
        j->webhook_id = dupn(rec.webhook_id, rec.webhook_id_len);
        j->body = dupn(rec.body, rec.body_len);
        j->body_len = rec.body_len;
        if (!j->id || !j->webhook_id || !j->body)
            return HQ_ENOMEM;
    }
    return HQ_OK;
}

int
hq_client_peek(hq_client *c, const char *key, size_t n, struct hq_peek *out)
{
    char num[24];
    const char *argv[2] = {key, num};
    redisReply *r;
    size_t custlen;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = hq__admin_check_key(key, &custlen, &c->err);
    if (rc != HQ_OK)
        return rc;
    snprintf(num, sizeof(num), "%zu", n);
    r = call_customer(c, "peek", key, custlen, 2, argv);
    if (r == NULL)
        return call_failed(c);
    if (!is_array(r, 8))
        return bad_reply(c, r, "peek");
    rc = peek_take(c, key, r, out);
    freeReplyObject(r);
    if (rc != HQ_OK) {
        hq_peek_release(out);
        if (rc == HQ_ENOMEM)
            return hq__err_set(&c->err, rc, "peek: out of memory");
        return hq__err_set(&c->err, rc, "peek: unexpected reply from redis");
    }
    return HQ_OK;
}

/* ------------------------------------------------------------------------ */
/* Stats.                                                                    */

void
hq_stats_release(struct hq_stats *s)
{
    if (s == NULL)
        return;
    free(s->shards);
    free(s->counters);
    for (size_t i = 0; i < s->ntop; i++)
        key_info_release(&s->top[i]);
    free(s->top);
    free(s->targets);
    memset(s, 0, sizeof(*s));
}

int64_t
hq_stats_counter(const struct hq_stats *s, const char *name)
{
    for (size_t i = 0; i < s->ncounters; i++)
        if (strcmp(s->counters[i].name, name) == 0)
            return s->counters[i].value;
    return 0;
}

static int
counter_add(struct hq_stats *s, const char *name, size_t len, int64_t v)
{
    struct hq_counter *cs;

    if (len >= sizeof(s->counters[0].name))
        return HQ_OK; /* not one of ours */
    for (size_t i = 0; i < s->ncounters; i++) {
        if (strlen(s->counters[i].name) == len &&
            memcmp(s->counters[i].name, name, len) == 0) {
            s->counters[i].value += v;
            return HQ_OK;
        }
    }
    cs = realloc(s->counters, (s->ncounters + 1) * sizeof(*cs));
    if (cs == NULL)
        return HQ_ENOMEM;
    s->counters = cs;
    memset(&cs[s->ncounters], 0, sizeof(cs[0]));
    memcpy(cs[s->ncounters].name, name, len);
    cs[s->ncounters].value = v;
    s->ncounters++;
    return HQ_OK;
}

static int
counter_cmp(const void *a, const void *b)
{
    const struct hq_counter *x = a, *y = b;

    return strcmp(x->name, y->name);
}

static void
shard_add(struct hq_shard_stats *t, const struct hq_shard_stats *s)
{
    t->ready_keys += s->ready_keys;
    t->ready_customers += s->ready_customers;
    t->active += s->active;
    t->parked += s->parked;
    t->held += s->held;
    t->held_customers += s->held_customers;
    t->dead_letters += s->dead_letters;
    t->jobs += s->jobs;
    if (s->oldest_age_ms > t->oldest_age_ms)
        t->oldest_age_ms = s->oldest_age_ms;
}

static int
stats_shard(hq_client *c, unsigned s, struct hq_stats *out)
{
    struct hq_shard_stats *sh = &out->shards[s];
    const redisReply *cs;
    redisReply *r;
    int rc = HQ_OK;

    r = call_shard(c, "stats", s, 0, NULL);
    if (r == NULL)
        return call_failed(c);
    if (!is_array(r, 11) || r->element[9]->type != REDIS_REPLY_ARRAY ||
        r->element[9]->elements % 2 != 0)
        return bad_reply(c, r, "stats");
    sh->ready_customers = int_at(r, 0);
    sh->ready_keys = int_at(r, 1);
    sh->active = int_at(r, 2);
    sh->parked = int_at(r, 3);
    sh->held = int_at(r, 4);
    sh->held_customers = int_at(r, 5);
    sh->dead_letters = int_at(r, 6);
    sh->jobs = int_at(r, 7);
    sh->oldest_age_ms = int_at(r, 10);
    if (int_at(r, 8) > out->time_ms)
        out->time_ms = int_at(r, 8);
    shard_add(&out->total, sh);
    cs = r->element[9];
    for (size_t i = 0; i + 1 < cs->elements && rc == HQ_OK; i += 2)
        if (cs->element[i]->type == REDIS_REPLY_STRING)
            rc = counter_add(out, cs->element[i]->str, cs->element[i]->len,
                             int_at(cs, i + 1));
    freeReplyObject(r);
    if (rc != HQ_OK)
        return hq__err_set(&c->err, rc, "stats: out of memory");
    return HQ_OK;
}

static int
target_cmp(const void *a, const void *b)
{
    const struct hq_target_info *x = a, *y = b;

    return strcmp(x->target, y->target);
}

/* The circuit breaker's targets (breaker.lua list, in shard 0's slot). */
static int
stats_targets(hq_client *c, struct hq_stats *out)
{
    const char *argv[3] = {"list", "", ""};
    const redisReply *l;
    redisReply *r;
    size_t n;

    r = call_shard(c, "breaker", 0, 3, argv);
    if (r == NULL)
        return call_failed(c);
    if (!is_array(r, 2) || r->element[1]->type != REDIS_REPLY_ARRAY ||
        r->element[1]->elements % 6 != 0)
        return bad_reply(c, r, "stats");
    l = r->element[1];
    n = l->elements / 6;
    out->targets = calloc(n ? n : 1, sizeof(*out->targets));
    if (out->targets == NULL) {
        freeReplyObject(r);
        return hq__err_set(&c->err, HQ_ENOMEM, "stats: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        struct hq_target_info *t = &out->targets[out->ntargets];
        redisReply *const *e = l->element + i * 6;

        if (e[0]->type != REDIS_REPLY_STRING || e[5]->type != REDIS_REPLY_STRING)
            continue;
        snprintf(t->target, sizeof(t->target), "%.*s", (int)e[0]->len,
                 e[0]->str);
        t->failures = int_at(l, i * 6 + 1);
        t->down_since_ms = int_at(l, i * 6 + 2);
        t->up = t->down_since_ms < 0;
        t->next_probe_ms = t->up ? -1 : int_at(l, i * 6 + 3);
        t->probes = int_at(l, i * 6 + 4);
        snprintf(t->last_error, sizeof(t->last_error), "%.*s",
                 (int)e[5]->len, e[5]->str);
        out->ntargets++;
    }
    freeReplyObject(r);
    if (out->ntargets > 1)
        qsort(out->targets, out->ntargets, sizeof(*out->targets), target_cmp);
    return HQ_OK;
}

int
hq_client_stats(hq_client *c, size_t top_n, struct hq_stats *out)
{
    struct hq_key_list top;
    int rc = HQ_OK;

    memset(out, 0, sizeof(*out));
    out->total.oldest_age_ms = -1;
    out->nshards = c->ns.shards;
    out->shards = calloc(c->ns.shards, sizeof(*out->shards));
    if (out->shards == NULL)
        return hq__err_set(&c->err, HQ_ENOMEM, "stats: out of memory");
    for (unsigned s = 0; s < c->ns.shards && rc == HQ_OK; s++)
        rc = stats_shard(c, s, out);
    if (rc == HQ_OK)
        rc = stats_targets(c, out);
    if (rc == HQ_OK && top_n > 0) {
        rc = hq_client_keys(c, HQ_KEY_IDLE, top_n, &top);
        if (rc == HQ_OK) {
            out->top = top.items;
            out->ntop = top.n;
        }
    }
    if (rc != HQ_OK) {
        hq_stats_release(out);
        return rc;
    }
    if (out->ncounters > 1)
        qsort(out->counters, out->ncounters, sizeof(*out->counters), counter_cmp);
    return HQ_OK;
}

static json_t *
shard_json(const struct hq_shard_stats *s)
{
    return json_pack("{sI sI sI sI sI sI sI sI sI}",
                     "jobs", (json_int_t)s->jobs,
                     "ready_keys", (json_int_t)s->ready_keys,
                     "ready_customers", (json_int_t)s->ready_customers,
                     "active", (json_int_t)s->active,
                     "parked", (json_int_t)s->parked,
                     "held", (json_int_t)s->held,
                     "held_customers", (json_int_t)s->held_customers,
                     "dead_letters", (json_int_t)s->dead_letters,
                     "oldest_age_ms", (json_int_t)s->oldest_age_ms);
}

/* json_object_set_new that tells whether it worked (NULL values too). */
static int
set_new(json_t *obj, const char *k, json_t *v)
{
    return v == NULL || json_object_set_new(obj, k, v) != 0;
}

/* The text of `root` (NULL if `bad` or out of memory); frees `root`. */
static char *
dump(json_t *root, int bad)
{
    char *out = NULL;

    if (!bad)
        out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return out;
}

/*
 * A JSON string of text that came from outside (a key, an error quoting a
 * payload): bytes that are not UTF-8 become U+FFFD, rather than the whole
 * document failing. NULL only when out of memory.
 */
static json_t *
text_json(const char *s, size_t len)
{
    size_t n;
    char *clean = hq__utf8_sanitize(s, len, &n);
    json_t *v;

    if (clean == NULL)
        return NULL;
    v = json_stringn_nocheck(clean, n);
    free(clean);
    return v;
}

static json_t *
key_json(const struct hq_key_info *k)
{
    json_t *o = json_pack("{so ss sI sI}", "key", text_json(k->key, strlen(k->key)),
                          "state", hq_key_state_name(k->state),
                          "depth", (json_int_t)k->depth,
                          "attempts", (json_int_t)k->attempts);

    if (o == NULL)
        return NULL;
    if ((k->when_ms >= 0 && set_new(o, k->state == HQ_KEY_ACTIVE ? "lease_expires_ms" : "due_ms",
                                    json_integer(k->when_ms))) ||
        (k->reason[0] && set_new(o, "reason", text_json(k->reason, strlen(k->reason)))) ||
        (k->error[0] && set_new(o, "error", text_json(k->error, strlen(k->error))))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *
hq_stats_json(const struct hq_stats *s, const struct hq_stats *prev)
{
    json_t *root, *arr, *cs;
    int bad = 0;

    root = json_object();
    if (root == NULL)
        return NULL;
    bad |= set_new(root, "time_ms", json_integer(s->time_ms));
    bad |= set_new(root, "shards", json_integer(s->nshards));
    bad |= set_new(root, "total", shard_json(&s->total));
    arr = json_array();
    bad |= set_new(root, "per_shard", arr);
    for (unsigned i = 0; !bad && i < s->nshards; i++) {
        json_t *o = shard_json(&s->shards[i]);

        bad |= o == NULL || json_object_set_new(o, "shard", json_integer(i)) != 0 ||
               json_array_append_new(arr, o) != 0;
    }
    cs = json_object();
    bad |= set_new(root, "counters", cs);
    for (size_t i = 0; !bad && i < s->ncounters; i++)
        bad |= set_new(cs, s->counters[i].name, json_integer(s->counters[i].value));
    if (!bad && prev != NULL && s->time_ms > prev->time_ms) {
        double secs = (double)(s->time_ms - prev->time_ms) / 1000.0;
        json_t *rates = json_object();

        bad |= set_new(root, "rates", rates);
        bad |= set_new(rates, "interval_ms", json_integer(s->time_ms - prev->time_ms));
        for (size_t i = 0; !bad && i < s->ncounters; i++) {
            int64_t d = s->counters[i].value - hq_stats_counter(prev, s->counters[i].name);

            bad |= set_new(rates, s->counters[i].name,
                           json_real((double)(d > 0 ? d : 0) / secs));
        }
    }
    arr = json_array();
    bad |= set_new(root, "top_keys", arr);
    for (size_t i = 0; !bad && i < s->ntop; i++) {
        json_t *o = key_json(&s->top[i]);

        bad |= o == NULL || json_array_append_new(arr, o) != 0;
    }
    arr = json_array();
    bad |= set_new(root, "targets", arr);
    for (size_t i = 0; !bad && i < s->ntargets; i++) {
        const struct hq_target_info *t = &s->targets[i];
        json_t *o = json_pack("{ss sb sI}", "target", t->target, "up", t->up,
                              "failures", (json_int_t)t->failures);

        bad |= o == NULL || json_array_append_new(arr, o) != 0;
        if (!bad && !t->up)
            bad |= set_new(o, "down_since_ms", json_integer(t->down_since_ms)) ||
                   set_new(o, "next_probe_ms", json_integer(t->next_probe_ms)) ||
                   set_new(o, "probes", json_integer(t->probes));
        if (!bad && t->last_error[0])
            bad |= set_new(o, "last_error", text_json(t->last_error, strlen(t->last_error)));
    }
    return dump(root, bad);
}

char *
hq_key_list_json(const struct hq_key_list *l)
{
    json_t *root, *arr;
    int bad = 0;

    root = json_object();
    if (root == NULL)
        return NULL;
    bad |= set_new(root, "time_ms", json_integer(l->time_ms));
    bad |= set_new(root, "total", json_integer((json_int_t)l->total));
    bad |= set_new(root, "truncated", json_boolean(l->truncated));
    arr = json_array();
    bad |= set_new(root, "keys", arr);
    for (size_t i = 0; !bad && i < l->n; i++) {
        json_t *o = key_json(&l->items[i]);

        bad |= o == NULL || json_array_append_new(arr, o) != 0;
    }
    return dump(root, bad);
}

static json_t *
dead_json(const struct hq_dead_letter *d)
{
    const char *cust = d->customer ? d->customer : "";
    json_t *o = json_pack("{ss so so sI sI sI sI so sI}", "id", d->id,
                          "key", text_json(d->key, strlen(d->key)),
                          "customer", text_json(cust, strlen(cust)),
                          "seq", (json_int_t)d->seq,
                          "received_at_ms", (json_int_t)d->received_at_ms,
                          "attempts", (json_int_t)d->attempts,
                          "at_ms", (json_int_t)d->at_ms,
                          "error", text_json(d->error, strlen(d->error)),
                          "shard", (json_int_t)d->shard);

    if (o == NULL)
        return NULL;
    if (d->webhook_id && set_new(o, "webhook_id", json_string(d->webhook_id))) {
        json_decref(o);
        return NULL;
    }
    if (d->body) {
        /*
         * The body as a string. Webhook bodies are JSON, so UTF-8, but the
         * library may queue any bytes: those show as null.
         */
        json_t *b = json_stringn(d->body, d->body_len);

        if (json_object_set_new(o, "body", b ? b : json_null()) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

char *
hq_dead_letter_json(const struct hq_dead_letter *d)
{
    json_t *o = dead_json(d);

    if (o == NULL)
        return NULL;
    return dump(o, 0);
}

char *
hq_dead_letters_json(const struct hq_dead_letters *l)
{
    json_t *root, *arr;
    int bad = 0;

    root = json_object();
    if (root == NULL)
        return NULL;
    bad |= set_new(root, "total", json_integer((json_int_t)l->total));
    arr = json_array();
    bad |= set_new(root, "dead_letters", arr);
    for (size_t i = 0; !bad && i < l->n; i++) {
        json_t *o = dead_json(&l->items[i]);

        bad |= o == NULL || json_array_append_new(arr, o) != 0;
    }
    return dump(root, bad);
}

char *
hq_peek_json(const struct hq_peek *p)
{
    const struct hq_key_info *k = &p->key;
    json_t *root, *arr;
    int bad;

    root = json_pack("{so ss sI sI so so}", "key", text_json(k->key, strlen(k->key)),
                     "state", hq_key_state_name(k->state),
                     "depth", (json_int_t)k->depth,
                     "attempts", (json_int_t)k->attempts,
                     "reason", text_json(k->reason, strlen(k->reason)),
                     "error", text_json(k->error, strlen(k->error)));
    if (root == NULL)
        return NULL;
    bad = k->when_ms >= 0 &&
          set_new(root, k->state == HQ_KEY_ACTIVE ? "lease_expires_ms" : "due_ms",
                  json_integer(k->when_ms));
    arr = json_array();
    bad |= set_new(root, "jobs", arr);
    for (size_t i = 0; !bad && i < p->n; i++) {
        const struct hq_peek_job *j = &p->jobs[i];
        json_t *o = json_pack("{ss sI sI so so}", "id", j->id, "seq", (json_int_t)j->seq,
                              "received_at_ms", (json_int_t)j->received_at_ms,
                              "webhook_id", text_json(j->webhook_id, strlen(j->webhook_id)),
                              "body", text_json(j->body, j->body_len));

        bad |= o == NULL || json_array_append_new(arr, o) != 0;
    }
    return dump(root, bad);
}
