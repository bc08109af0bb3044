/*
 * The circuit breaker's client side (see breaker_int.h). The decisions are
 * breaker.lua's, on one slot, so that every worker, process and host sees
 * one state per target; this file builds the calls, reads the answers, and
 * keeps a loop's view of each target from them (struct hq__breaker_view:
 * a pure decision, hq__breaker_view_plan(), and what each answer teaches,
 * hq__breaker_view_learn(); see breaker_int.h for why per loop).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "breaker_int.h"
#include "clock_int.h"
#include "conn_int.h"

struct call_ctx {
    hq__breaker_fn *fn;
    void *arg;
    struct hq__breaker_view *view; /* learns from the answer; may be NULL */
    char op[8];
};

static int64_t
int_at(const redisReply *r, size_t i)
{
    return i < r->elements && r->element[i]->type == REDIS_REPLY_INTEGER
               ? r->element[i]->integer
               : 0;
}

int
hq__breaker_parse(const char *op, const redisReply *r,
                  struct hq__breaker_answer *a)
{
    memset(a, 0, sizeof(*a));
    a->verdict = HQ_BREAKER_ERROR;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        return HQ_EPROTO;
    if (strcmp(op, "check") == 0 || strcmp(op, "peek") == 0) {
        switch (int_at(r, 0)) {
        case 1:
        case 2:
            a->verdict = (int)int_at(r, 0);
            a->n = int_at(r, 1);
            return HQ_OK;
        case 0:
            a->verdict = HQ_BREAKER_WAIT;
            a->wait_ms = int_at(r, 1);
            return HQ_OK;
        }
        return HQ_EPROTO;
    }
    a->verdict = HQ_BREAKER_GO;
    if (strcmp(op, "ok") == 0) {
        a->changed = int_at(r, 0) == 1;
        a->down_ms = int_at(r, 1);
        a->probes = int_at(r, 2);
        return HQ_OK;
    }
    a->counted = int_at(r, 0) == 1;
    if (a->counted) {
        a->changed = int_at(r, 1) == 1;
        a->n = int_at(r, 2);
    } else {
        a->wait_ms = int_at(r, 1);
        a->probes = int_at(r, 2);
    }
    return HQ_OK;
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct call_ctx *c = privdata;
    struct hq__breaker_answer a;

    (void)ac;
    hq__breaker_parse(c->op, reply, &a);
    if (c->view)
        hq__breaker_view_learn(c->view, c->op, &a, hq__mono_ms());
    if (c->fn)
        c->fn(&a, c->arg);
    free(c);
}

/* Every target's state is in shard 0's slot. */
static int
call(struct hq__conn *conn, struct hq__breaker_view *view, int argc,
     const char **argv, hq__breaker_fn *fn, void *arg)
{
    size_t argvlen[8];
    struct call_ctx *c;
    int rc;

    c = malloc(sizeof(*c));
    if (!c)
        return HQ_ENOMEM;
    c->fn = fn;
    c->arg = arg;
    c->view = view;
    snprintf(c->op, sizeof(c->op), "%s", argv[0]);
    for (int i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    rc = hq__conn_eval(conn, 0, "breaker", argc, argv, argvlen, on_reply, c);
    if (rc != HQ_OK)
        free(c);
    return rc;
}

int
hq__breaker_check(struct hq__conn *c, struct hq__breaker_view *v,
                  const char *target, const char *id, int64_t lease_ms,
                  hq__breaker_fn *fn, void *arg)
{
    char l[24];
    const char *argv[4] = {"check", target, id, l};

    snprintf(l, sizeof(l), "%lld", (long long)lease_ms);
    return call(c, v, 4, argv, fn, arg);
}

int
hq__breaker_ok(struct hq__conn *c, struct hq__breaker_view *v,
               const char *target, const char *id, hq__breaker_fn *fn,
               void *arg)
{
    const char *argv[3] = {"ok", target, id};

    return call(c, v, 3, argv, fn, arg);
}

int
hq__breaker_fail(struct hq__conn *c, struct hq__breaker_view *v,
                 const char *target, const char *id,
                 const struct hq__breaker_cfg *cfg, const char *error,
                 hq__breaker_fn *fn, void *arg)
{
    char t[24], lo[24], hi[24], e[300];
    const char *argv[7] = {"fail", target, id, t, lo, hi, e};

    snprintf(t, sizeof(t), "%d", cfg->threshold);
    snprintf(lo, sizeof(lo), "%lld", (long long)cfg->probe_min_ms);
    snprintf(hi, sizeof(hi), "%lld", (long long)cfg->probe_max_ms);
    snprintf(e, sizeof(e), "%s", error ? error : "");
    return call(c, v, 7, argv, fn, arg);
}

int
hq__breaker_peek(struct hq__conn *c, struct hq__breaker_view *v,
                 const char *target, int64_t now_ms)
{
    const char *argv[3] = {"peek", target, ""};
    int rc = call(c, v, 3, argv, NULL, NULL);

    if (rc == HQ_OK) {
        v->peeking = 1;
        v->asked_ms = now_ms;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* A loop's view of a target.                                               */

int
hq__breaker_view_plan(const struct hq__breaker_view *v, int64_t now_ms)
{
    if (v->state != HQ_BREAKER_VIEW_CLEAN)
        return HQ_BREAKER_PLAN_CHECK;
    if (now_ms - v->seen_ms < HQ_BREAKER_VIEW_FRESH_MS || v->peeking ||
        now_ms - v->asked_ms < HQ_BREAKER_VIEW_FRESH_MS)
        return HQ_BREAKER_PLAN_GO;
    return HQ_BREAKER_PLAN_GO_PEEK;
}

void
hq__breaker_view_learn(struct hq__breaker_view *v, const char *op,
                       const struct hq__breaker_answer *a, int64_t now_ms)
{
    int clean;

    if (strcmp(op, "peek") == 0)
        v->peeking = 0; /* answered or failed: another may go after a while */
    if (a->verdict == HQ_BREAKER_ERROR)
        return;
    if (strcmp(op, "check") == 0 || strcmp(op, "peek") == 0)
        clean = a->verdict == HQ_BREAKER_GO && a->n == 0;
    else if (strcmp(op, "ok") == 0)
        clean = 1; /* the script left it up with no failure counted */
    else
        clean = 0; /* a failure: counted, or down already */
    v->state = clean ? HQ_BREAKER_VIEW_CLEAN : HQ_BREAKER_VIEW_DIRTY;
    if (clean)
        v->seen_ms = now_ms;
}
