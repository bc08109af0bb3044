/*
 * Unit tests for conn.c and sconn.c: what an async connection does when
 * nothing listens (down hook, retries spaced by the reconnect policy of
 * clock.c, no connection handed out while down, on-demand connects,
 * release), and the blocking one's error.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock_int.h"
#include "conn_int.h"

/* A loopback port where nothing listens (bound, then closed). */
static int
dead_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

struct watch {
    int ups, downs;
    int64_t at[64];  /* when each down hook ran */
    char why[300];
};

static void
on_up(struct hq__conn *c, void *arg)
{
    (void)c;
    ((struct watch *)arg)->ups++;
}

static void
on_down(struct hq__conn *c, const char *why, void *arg)
{
    struct watch *w = arg;

    assert_null(c->ac);
    assert_false(c->up);
    if (w->downs < 64)
        w->at[w->downs] = hq__mono_ms();
    w->downs++;
    snprintf(w->why, sizeof(w->why), "%s", why);
}

static void
stop_loop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void
run_for(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_base_once(base, -1, EV_TIMEOUT, stop_loop, base, &tv);
    event_base_dispatch(base);
}

/* `c` on `base`, to a loopback port where nothing listens. */
struct setup {
    struct hq__store_addr addr;
    struct hq__store_ns ns;
    struct watch w;
    struct hq__conn c;
};

static void
setup_dead(struct setup *t, struct event_base *base, unsigned flags)
{
    struct hq__conn_hooks hooks = {on_up, on_down, &t->w};
    struct hq__err err;
    char url[64];

    memset(t, 0, sizeof(*t));
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", dead_port());
    assert_int_equal(hq__store_parse_url(url, 1000, &t->addr, &err), HQ_OK);
    assert_int_equal(hq__store_ns_init(&t->ns, "t", 4, &err), HQ_OK);
    assert_int_equal(hq__conn_init(&t->c, base, &t->addr, &t->ns, &hooks, flags),
                     HQ_OK);
}

static void
test_conn_refused_retries_after_the_backoff(void **state)
{
    struct event_base *base = event_base_new();
    static struct setup t;

    (void)state;
    setup_dead(&t, base, 0);
    hq__conn_start(&t.c);
    run_for(base, 600);
    assert_int_equal(t.w.ups, 0);
    assert_non_null(strstr(t.w.why, "cannot connect to redis"));
    /* 25-50, 50-100, 100-200, 200-400 ms apart: 3 to 5 attempts in 600 ms. */
    assert_in_range(t.w.downs, 3, 5);
    for (int i = 1; i < t.w.downs; i++) {
        int lo = (HQ_RECONNECT_MIN_MS << (i - 1)) / 2;
        assert_true(t.w.at[i] - t.w.at[i - 1] >= lo);
    }
    assert_null(hq__conn_for_shard(&t.c, 3));
    assert_int_equal(hq__conn_eval(&t.c, 3, "enqueue", 0, NULL, NULL, NULL, NULL),
                     HQ_ESTORE);
    assert_int_equal(hq__conn_eval(&t.c, 3, "no-such-script", 0, NULL, NULL,
                                   NULL, NULL),
                     HQ_EINVAL);
    /* Released: no more attempts, no more hooks. */
    hq__conn_release(&t.c);
    t.w.downs = 0;
    run_for(base, 150);
    assert_int_equal(t.w.downs, 0);
    event_base_free(base);
}

static void
test_conn_on_demand_connects_at_the_call_only(void **state)
{
    struct event_base *base = event_base_new();
    static struct setup t;

    (void)state;
    setup_dead(&t, base, HQ_CONN_ON_DEMAND);
    /* The lookup starts a connection: calls queue on it. */
    assert_non_null(hq__conn_for_shard(&t.c, 0));
    run_for(base, 200);
    assert_int_equal(t.w.downs, 1); /* and no timer tried again */
    assert_non_null(hq__conn_for_shard(&t.c, 0));
    run_for(base, 100);
    assert_int_equal(t.w.downs, 2);
    hq__conn_release(&t.c);
    event_base_free(base);
}

static void
test_sconn_names_the_address_it_cannot_reach(void **state)
{
    struct hq__store_addr addr;
    struct hq__store_ns ns;
    struct hq__err err;
    struct hq__sconn c;
    char url[64], want[80];
    int port = dead_port();

    (void)state;
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", port);
    assert_int_equal(hq__store_parse_url(url, 1000, &addr, &err), HQ_OK);
    assert_int_equal(hq__store_ns_init(&ns, "t", 1, &err), HQ_OK);
    hq__sconn_init(&c, &addr, &ns);
    assert_null(hq__sconn_eval(&c, 0, "enqueue", 0, NULL, NULL, &err));
    snprintf(want, sizeof(want), "cannot connect to redis at '127.0.0.1:%d'", port);
    assert_non_null(strstr(err.msg, want));
    hq__sconn_release(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conn_refused_retries_after_the_backoff),
        cmocka_unit_test(test_conn_on_demand_connects_at_the_call_only),
        cmocka_unit_test(test_sconn_names_the_address_it_cannot_reach),
    };
    return cmocka_run_group_tests_name("conn", tests, NULL, NULL);
}
