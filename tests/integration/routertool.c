/*
 * routertool: pushes jobs through the cluster router (src/lib/router.c)
 * with the real `enqueue` script, so that test_cluster_router.py can move
 * slots and kill masters under it.
 *
 *   routertool URL NS SHARDS CUSTOMERS JOBS [SECONDS]
 *
 * Customer c (0..CUSTOMERS-1) is "c<c>", its key "c<c>:ev"; its jobs 1..JOBS
 * go one at a time (the next once Redis answered the last, as a client
 * waiting for its 202 would), the customers side by side, each spread over
 * SECONDS (0 = as fast as answered). A job whose call fails is sent again
 * after 50 ms with the same webhook-id "c<c>-<n>", so a call that ran
 * before its connection failed is answered "duplicate", not stored twice.
 * Prints one line per answer: "ok c<c> <n> <seq>", "dup c<c> <n>" or
 * "retry c<c> <n> <why>", then "stats moved=.. ask=.. retried=..
 * refreshes=.. given_up=..". Exit 0 when every job was stored, 1 when the
 * 60 s deadline passed first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>

#include "enqueue_int.h"
#include "router_int.h"

struct cust {
    struct run *run;
    char name[32];
    unsigned slot;
    char prefix[HQ_PREFIX_MAX];
    int next;          /* job to send: 1..jobs */
    struct event *timer;
};

struct run {
    struct event_base *base;
    struct hq__router *router;
    struct hq__store_ns ns;
    struct cust *custs;
    int ncust, jobs, done;
    double spacing_ms;
    struct event *start_ev, *deadline_ev;
    int failed;
};

static void send_job(struct cust *c);

static void
later(struct cust *c, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static void
on_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    struct cust *c = privdata;
    redisReply *r = reply_;

    (void)ac;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        printf("retry %s %d %s\n", c->name, c->next,
               r == NULL ? "no reply" : r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        later(c, 50);
        return;
    }
    if (r->element[0]->integer == 0)
        printf("ok %s %d %lld\n", c->name, c->next, r->element[2]->integer);
    else if (r->element[0]->integer == 1)
        printf("dup %s %d\n", c->name, c->next);
    else
        printf("full %s %d\n", c->name, c->next);
    fflush(stdout);
    if (++c->next > c->run->jobs) {
        if (++c->run->done == c->run->ncust)
            event_base_loopbreak(c->run->base);
        return;
    }
    if (c->run->spacing_ms > 0)
        later(c, (int)c->run->spacing_ms);
    else
        send_job(c);
}

static void
send_job(struct cust *c)
{
    char body[64], wid[64];
    const char *argv[HQ_ENQUEUE_ARGC(1)];
    size_t argvlen[HQ_ENQUEUE_ARGC(1)];
    unsigned char digest[HQ_ENQUEUE_DIGEST];
    struct hq__enqueue_limits lim;
    struct hq_push p;
    int rc;

    snprintf(body, sizeof(body), "{\"n\":%d}", c->next);
    snprintf(wid, sizeof(wid), "%s-%d", c->name, c->next);
    memset(&p, 0, sizeof(p));
    p.customer = c->name;
    p.customer_len = strlen(c->name);
    p.code = "ev";
    p.code_len = 2;
    p.body = body;
    p.body_len = strlen(body);
    p.webhook_id = wid;
    p.webhook_id_len = strlen(wid);
    hq__enqueue_limits_init(&lim, NULL);
    hq__enqueue_argv_limits(&lim, argv, argvlen);
    hq__enqueue_argv_job(0, &p, digest, argv, argvlen);
    rc = hq__router_eval(c->run->router, c->slot, "enqueue", c->prefix,
                         HQ_ENQUEUE_ARGC(1), argv, argvlen, on_reply, c);
    if (rc != HQ_OK) {
        printf("retry %s %d cannot send now (%d)\n", c->name, c->next, rc);
        later(c, 50);
    }
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    send_job(arg);
}

static void
start_cb(evutil_socket_t fd, short what, void *arg)
{
    struct run *run = arg;
    struct timeval tv = {0, 20000};

    (void)fd;
    (void)what;
    if (!hq__router_has_map(run->router)) {
        evtimer_add(run->start_ev, &tv);
        return;
    }
    for (int i = 0; i < run->ncust; i++)
        send_job(&run->custs[i]);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct run *run = arg;

    (void)fd;
    (void)what;
    run->failed = 1;
    event_base_loopbreak(run->base);
}

int
main(int argc, char **argv)
{
    struct hq__store_addr addr;
    struct hq__router_stats st;
    struct hq__err e;
    struct run run;
    struct timeval dl = {60, 0}, now = {0, 0};

    if (argc < 6) {
        fprintf(stderr, "usage: routertool URL NS SHARDS CUSTOMERS JOBS [SECONDS]\n");
        return 2;
    }
    memset(&run, 0, sizeof(run));
    if (hq__store_parse_url(argv[1], 2000, &addr, &e) ||
        hq__store_ns_init(&run.ns, argv[2], (unsigned)strtoul(argv[3], NULL, 10), &e)) {
        fprintf(stderr, "routertool: %s\n", e.msg);
        return 2;
    }
    run.ncust = (int)strtol(argv[4], NULL, 10);
    run.jobs = (int)strtol(argv[5], NULL, 10);
    run.spacing_ms = argc > 6 ? strtod(argv[6], NULL) * 1000.0 / run.jobs : 0;
    run.base = event_base_new();
    if (hq__router_new(run.base, &addr, &run.router) != HQ_OK)
        return 1;
    run.custs = calloc((size_t)run.ncust, sizeof(*run.custs));
    for (int i = 0; i < run.ncust; i++) {
        struct cust *c = &run.custs[i];
        unsigned shard;
        c->run = &run;
        snprintf(c->name, sizeof(c->name), "c%d", i);
        shard = hq__store_shard_of(&run.ns, c->name, strlen(c->name));
        hq__store_prefix(&run.ns, shard, c->prefix, sizeof(c->prefix));
        c->slot = hq__cluster_shard_slot(&run.ns, shard);
        c->next = 1;
        c->timer = evtimer_new(run.base, timer_cb, c);
    }
    run.start_ev = evtimer_new(run.base, start_cb, &run);
    run.deadline_ev = evtimer_new(run.base, deadline_cb, &run);
    evtimer_add(run.start_ev, &now);
    evtimer_add(run.deadline_ev, &dl);
    event_base_dispatch(run.base);
    hq__router_get_stats(run.router, &st);
    printf("stats moved=%lu ask=%lu retried=%lu refreshes=%lu given_up=%lu\n",
           st.moved, st.ask, st.retried, st.refreshes, st.given_up);
    hq__router_free(run.router);
    for (int i = 0; i < run.ncust; i++)
        event_free(run.custs[i].timer);
    free(run.custs);
    event_free(run.start_ev);
    event_free(run.deadline_ev);
    event_base_free(run.base);
    return run.failed ? 1 : 0;
}
