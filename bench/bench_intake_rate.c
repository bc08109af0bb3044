/*
 * bench_intake_rate: a fixed-rate HTTP load generator for the intake
 * benchmark (wrk2 is not packaged in Debian).
 *
 *     bench_intake_rate HOST PORT PATH RATE SECONDS [CONNS]
 *
 * Request i is due at start + i/RATE. Due requests wait in a queue until one
 * of CONNS keep-alive connections is free; latency is measured from the due
 * time, not from the send, so a stalled server is charged for the requests
 * that queued behind it (no coordinated omission). Sends RATE * SECONDS
 * requests in all (bounded), each a ~1 KiB webhook for one of 100 customers
 * with a unique webhook-id, then prints one line:
 *     rate R/s sent N ok N other N p50 X ms p90 X ms p99 X ms max X ms
 * Exits 1 when some requests got no answer within SECONDS + 10 s.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

struct client;

struct bench {
    struct event_base *base;
    struct sockaddr_in sa;
    const char *path;
    double rate;
    long total;        /* requests to send */
    long scheduled;    /* due so far */
    long sent, done, ok, other;
    double start;      /* monotonic seconds */
    double *due;       /* due time of request i */
    double *lat;       /* latency of each answered request, ms */
    double *slat;      /* the same from the send, ms */
    double *sent_at;
    long next;         /* next request index to send */
    struct client *idle;
    struct event *tick;
    char bodies[100][1200];
    size_t bodylen[100];
};

struct client {
    struct bench *b;
    struct bufferevent *bev;
    struct client *next_idle;
    long req;          /* request in flight, -1 when idle */
};

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
send_req(struct client *c, long i)
{
    struct bench *b = c->b;
    int k = (int)(i % 100);

    c->req = i;
    b->sent_at[i] = now();
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Content-Type: application/json\r\n"
                        "webhook-id: msg_bench_%ld_%ld\r\n"
                        "Content-Length: %zu\r\n\r\n",
                        b->path, (long)b->start, i, b->bodylen[k]);
    bufferevent_write(c->bev, b->bodies[k], b->bodylen[k]);
    b->sent++;
}

static void
dispatch(struct bench *b)
{
    while (b->next < b->scheduled && b->idle != NULL) {
        struct client *c = b->idle;

        b->idle = c->next_idle;
        send_req(c, b->next++);
    }
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;
    long due = (long)((now() - b->start) * b->rate) + 1;

    (void)fd;
    (void)what;
    if (due > b->total)
        due = b->total;
    for (; b->scheduled < due; b->scheduled++)
        b->due[b->scheduled] = b->start + (double)b->scheduled / b->rate;
    dispatch(b);
    if (b->done >= b->total || now() - b->start > b->total / b->rate + 10)
        event_base_loopbreak(b->base);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
    struct client *c = arg;
    struct bench *b = c->b;
    struct evbuffer *in = bufferevent_get_input(bev);

    for (;;) {
        struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        char head[2048], *cl;
        size_t hlen, blen = 0;
        int status;

        if (p.pos < 0)
            return;
        hlen = (size_t)p.pos + 4;
        if (hlen >= sizeof(head)) {
            fprintf(stderr, "bench: response head too long\n");
            exit(1);
        }
        evbuffer_copyout(in, head, hlen);
        head[hlen] = '\0';
        cl = strcasestr(head, "\r\ncontent-length:");
        if (cl)
            blen = strtoul(cl + 17, NULL, 10);
        if (evbuffer_get_length(in) < hlen + blen)
            return;
        evbuffer_drain(in, hlen + blen);
        status = (int)strtol(head + 9, NULL, 10);
        if (status == 100)
            continue;
        if (c->req >= 0) {
            b->slat[b->done] = (now() - b->sent_at[c->req]) * 1000.0;
            b->lat[b->done++] = (now() - b->due[c->req]) * 1000.0;
            if (status == 202 || status == 200)
                b->ok++;
            else
                b->other++;
        }
        c->req = -1;
        c->next_idle = b->idle;
        b->idle = c;
        dispatch(b);
    }
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)arg;
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        fprintf(stderr, "bench: connection lost\n");
        exit(1);
    }
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double
pct(const double *v, long n, double p)
{
    long i = (long)(p / 100.0 * (double)n);

    if (n == 0)
        return 0;
    if (i >= n)
        i = n - 1;
    return v[i];
}

int
main(int argc, char **argv)
{
    struct bench b;
    struct timeval tick = {0, 500};
    int conns;

    if (argc < 6) {
        fprintf(stderr, "usage: bench_intake_rate HOST PORT PATH RATE SECONDS [CONNS]\n");
        return 2;
    }
    memset(&b, 0, sizeof(b));
    b.sa.sin_family = AF_INET;
    b.sa.sin_port = htons((unsigned short)strtol(argv[2], NULL, 10));
    inet_pton(AF_INET, argv[1], &b.sa.sin_addr);
    b.path = argv[3];
    b.rate = strtod(argv[4], NULL);
    b.total = (long)(b.rate * strtod(argv[5], NULL));
    conns = argc > 6 ? (int)strtol(argv[6], NULL, 10) : 64;
    if (b.rate <= 0 || b.total <= 0 || conns <= 0)
        return 2;
    b.due = calloc((size_t)b.total, sizeof(double));
    b.lat = calloc((size_t)b.total, sizeof(double));
    b.slat = calloc((size_t)b.total, sizeof(double));
    b.sent_at = calloc((size_t)b.total, sizeof(double));
    for (int k = 0; k < 100; k++) {
        int n = snprintf(b.bodies[k], sizeof(b.bodies[k]),
                         "{\"code\":\"post-create\",\"data\":{\"customer_id\":\"cust-%03d\","
                         "\"post_id\":%d,\"title\":\"", k, 1000 + k);

        for (; n < 1000; n++)
            b.bodies[k][n] = (char)('a' + n % 26);
        n += snprintf(b.bodies[k] + n, sizeof(b.bodies[k]) - (size_t)n, "\"}}");
        b.bodylen[k] = (size_t)n;
    }
    {
        /* Ticks of 0.5 ms need timerfd precision, not epoll's milliseconds. */
        struct event_config *ec = event_config_new();

        event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
        b.base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    for (int i = 0; i < conns; i++) {
        struct client *c = calloc(1, sizeof(*c));

        c->b = &b;
        c->req = -1;
        c->bev = bufferevent_socket_new(b.base, -1, BEV_OPT_CLOSE_ON_FREE);
        bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
        if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&b.sa,
                                       sizeof(b.sa)) != 0) {
            fprintf(stderr, "bench: cannot connect\n");
            return 1;
        }
        c->next_idle = b.idle;
        b.idle = c;
    }
    b.start = now();
    b.tick = event_new(b.base, -1, EV_PERSIST, on_tick, &b);
    event_add(b.tick, &tick);
    event_base_dispatch(b.base);

    qsort(b.lat, (size_t)b.done, sizeof(double), cmp_double);
    qsort(b.slat, (size_t)b.done, sizeof(double), cmp_double);
    fprintf(stderr, "from send: p50 %.2f p99 %.2f ms\n", pct(b.slat, b.done, 50), pct(b.slat, b.done, 99));
    printf("rate %.0f/s sent %ld ok %ld other %ld p50 %.2f ms p90 %.2f ms "
           "p99 %.2f ms max %.2f ms\n",
           b.rate, b.sent, b.ok, b.other, pct(b.lat, b.done, 50),
           pct(b.lat, b.done, 90), pct(b.lat, b.done, 99),
           b.done ? b.lat[b.done - 1] : 0.0);
    return b.done == b.total ? 0 : 1;
}
