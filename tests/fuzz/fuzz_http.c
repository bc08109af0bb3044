/*
 * Fuzz target for the intake's HTTP/1.1 reading (src/hookq/intake.c): the
 * request line and headers (parse_head), Content-Length and chunked bodies
 * (read_chunked), keep-alive and pipelining, then the signature and
 * envelope checks: everything a client sends before the job reaches Redis.
 *
 * Like tests/integration/intake_server.c, it builds intake.c in, and feeds
 * one connection's bytes to its process() as on_read() would, with no
 * event loop running and no Redis (a request that passes every check is
 * answered 503 redis_unavailable). The connection is one end of a
 * socketpair; the answers are read from the other.
 *
 * Input: one byte, then the bytes of the connection. The first byte, when
 * not 0, is the size of the pieces the bytes arrive in (so a header block or
 * a chunk line can be split anywhere). A secret is set when the bytes hold
 * "webhook-signature:". The config has one event, post-create, and small
 * limits (max_header 1 KiB, max_body 2 KiB) that inputs can reach.
 *
 * Beyond never crashing or leaking: everything written back is a sequence
 * of "HTTP/1.1 NNN ..." answers with a known status, each answering a
 * request, and nothing follows an answer that said "Connection: close".
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>

/* The binary's sources are not in the library: build intake.c in. */
#include "../../src/hookq/intake.c"
#include "../../src/hookq/metrics.c"

#include "fuzz.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static const char ini[] =
    "[intake]\n"
    "max_header = 1KiB\n"
    "max_body = 2KiB\n"
    "[event post-create]\n"
    "deliver = log\n";

static struct hq_config *cfg;
static struct hq_intake in;
static struct loop lp;

static void
setup(void)
{
    static char *noenv[] = {NULL};
    char path[64], err[1024];
    struct hq__err e;
    int fd = memfd_create("fuzz_http.ini", 0);

    if (fd < 0 || write(fd, ini, sizeof(ini) - 1) != (ssize_t)(sizeof(ini) - 1))
        abort();
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if (hq__config_load(path, noenv, &cfg, err, sizeof(err)) != HQ_OK) {
        fprintf(stderr, "fuzz_http: %s", err);
        abort();
    }
    close(fd);
    signal(SIGPIPE, SIG_IGN); /* linger() shuts our side down */
    in.cfg = cfg;
    in.path = "/webhook";
    if (hq__customer_spec_init(&in.customer, cfg->intake.customer, &e) != HQ_OK ||
        hq__sig_key_parse(SECRET, &in.key, &e) != HQ_OK)
        abort();
    in.header_tv = in.idle_tv = in.redis_tv = in.linger_tv = in.write_tv = ms_tv(10000);
    in.fd = -1;
    in.nloops = 1;
    in.loops = &lp;
    lp.in = &in;
    lp.base = event_base_new();
    lp.msg = evbuffer_new();
    if (lp.base == NULL || lp.msg == NULL)
        abort();
}

static void
on_timer_unused(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* The answers written back: well-formed, known statuses, none after a close. */
static void
check_answers(const char *out, size_t n)
{
    static const int known[] = {200, 202, 400, 401, 404, 405, 413, 422, 429, 431, 501, 503};
    const char *p = out, *end = out + n;

    while (p < end) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        const char *head_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        const char *cl, *next;
        int status = 0, ok = 0, closing;
        size_t len;

        if ((size_t)(end - p) >= sizeof(cont) - 1 && memcmp(p, cont, sizeof(cont) - 1) == 0) {
            p += sizeof(cont) - 1;
            continue;
        }
        HQ_FUZZ_CHECK(head_end != NULL, "an answer without a blank line");
        HQ_FUZZ_CHECK(end - p > 13 && memcmp(p, "HTTP/1.1 ", 9) == 0,
                      "not an HTTP/1.1 answer: %.40s", p);
        for (int i = 9; i < 12; i++) {
            HQ_FUZZ_CHECK(p[i] >= '0' && p[i] <= '9', "status %.3s", p + 9);
            status = status * 10 + (p[i] - '0');
        }
        for (size_t i = 0; i < HQ_ARRAY_SIZE(known); i++)
            ok |= known[i] == status;
        HQ_FUZZ_CHECK(ok, "unknown status %d", status);
        cl = memmem(p, (size_t)(head_end - p), "\r\nContent-Length: ", 18);
        HQ_FUZZ_CHECK(cl != NULL, "an answer without Content-Length");
        len = strtoul(cl + 18, NULL, 10);
        closing = memmem(p, (size_t)(head_end - p) + 2, "\r\nConnection: close\r\n", 21) != NULL;
        next = head_end + 4;
        /* A HEAD request's answer has no body: find the next answer. */
        if ((size_t)(end - next) >= len &&
            (next + len == end || memcmp(next + len, "HTTP/1.1 ", 9) == 0))
            next += len;
        HQ_FUZZ_CHECK(!closing || next == end, "bytes after a closing answer");
        p = next;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct conn *c;
    struct evbuffer *inb;
    size_t piece, off;
    int sv[2];
    char out[16384];
    size_t outn = 0;

    if (!ready) {
        setup();
        ready = 1;
    }
    if (size == 0)
        return 0;
    piece = data[0] ? data[0] : size;
    data++;
    size--;
    in.has_secret = memmem(data, size, "webhook-signature:", 18) != NULL;

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        abort();
    c->lp = &lp;
    c->bev = bufferevent_socket_new(lp.base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(lp.base, on_timer_unused, c);
    if (c->bev == NULL || c->timer == NULL)
        abort();
    c->state = ST_IDLE;
    c->first = 1;
    c->content_length = -1;
    lp.conns = c;
    lp.nconns = 1;
    atomic_store(&in.nconns, 1);
    inb = bufferevent_get_input(c->bev);
    evbuffer_unfreeze(inb, 0); /* only the bufferevent adds there, else */

    for (off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;

        if (evbuffer_add(inb, data + off, n) != 0)
            abort();
        process(c);
        /* What the loop would do: send what is queued, then on_write(). */
        for (int round = 0; round < 4; round++) {
            struct evbuffer *ob = bufferevent_get_output(c->bev);
            ssize_t r;

            while (evbuffer_get_length(ob) > 0 && evbuffer_write(ob, sv[0]) > 0)
                ;
            while (outn < sizeof(out) &&
                   (r = read(sv[1], out + outn, sizeof(out) - outn)) > 0)
                outn += (size_t)r;
            if (c->state != ST_CLOSING && !c->paused)
                break;
            on_write(c->bev, c);
        }
    }
    if (getenv("HQ_FUZZ_SHOW") != NULL) /* to read what was answered */
        fprintf(stderr, "--- %zu bytes answered:\n%.*s\n", outn, (int)outn, out);
    if (outn < sizeof(out))
        check_answers(out, outn);
    conn_free(c);
    /* bufferevent_free() leaves closing the socket to the loop. */
    event_base_loop(lp.base, EVLOOP_NONBLOCK);
    close(sv[1]);
    return 0;
}
