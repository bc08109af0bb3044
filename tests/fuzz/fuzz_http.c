/*
 * Fuzz target for the intake's HTTP/1.1 reading (src/hookq/intake.c): the
 * request line and headers (parse_head), Content-Length and chunked bodies
 * (read_chunked), keep-alive and pipelining, then the signature and
 * envelope checks: everything a client sends before the job reaches Redis.
 *
 * Like tests/integration/intake_server.c, it builds intake.c in, and feeds
 * one connection's bytes to its process() as on_read() would, with no
 * event loop running and no Redis (a request that passes every check is
 * answered 503 redis_unavailable by the pusher, whose connection is never
 * started). The connection is one end of a
 * socketpair; the answers are read from the other.
 *
 * Input: one byte, then the bytes of the connection. The first byte, when
 * not 0, is the size of the pieces the bytes arrive in a second time (so a
 * header block or a chunk line can be split anywhere). A secret is set when the bytes hold
 * "webhook-signature:". The config has one event, post-create, and small
 * limits (max_header 1 KiB, max_body 2 KiB) that inputs can reach.
 *
 * Beyond never crashing or leaking: everything written back is a sequence
 * of "HTTP/1.1 NNN ..." answers with a known status, each answering a
 * request, and nothing follows an answer that said "Connection: close".
 * And the answers do not depend on how the bytes were split: in pieces,
 * they are those of the bytes in one piece (but for "100 Continue", which
 * is sent only when no body byte came with the header block).
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
    /* A Redis connection never started: every push is answered 503. */
    if (lp.base == NULL || lp.msg == NULL ||
        hq__store_ns_init(&in.ns, "fuzz", 1, &e) != HQ_OK ||
        hq__conn_init(&lp.redis, lp.base, &in.addr, &in.ns, NULL, 0) != HQ_OK ||
        hq__pusher_new(lp.base, &lp.redis, &in.ns, &in.push,
                       &(struct hq__pusher_hooks){on_pushed, NULL, NULL, &lp},
                       &lp.pusher) != HQ_OK)
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

/*
 * One connection: `size` bytes arriving `piece` at a time. The answers go
 * to `out`; returns their length (sizeof(out) or more: cut short).
 */
static size_t
run(const uint8_t *data, size_t size, size_t piece, char *out, size_t outsize)
{
    struct conn *c;
    struct evbuffer *inb;
    size_t off, outn = 0;
    int sv[2];

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
    /* Only the bufferevent adds to its input, and sends from its output. */
    evbuffer_unfreeze(inb, 0);
    evbuffer_unfreeze(bufferevent_get_output(c->bev), 1);

    for (off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;

        if (evbuffer_add(inb, data + off, n) != 0)
            abort();
        process(c);
        /* What the loop would do: send what is queued, then on_write(). */
        for (int round = 0; round < 4; round++) {
            struct evbuffer *ob = bufferevent_get_output(c->bev);
            ssize_t r;

            while (evbuffer_get_length(ob) > 0)
                if (evbuffer_write(ob, sv[0]) <= 0)
                    break; /* shut down by linger(): nothing more leaves */
            while (outn < outsize && (r = read(sv[1], out + outn, outsize - outn)) > 0)
                outn += (size_t)r;
            if (c->state != ST_CLOSING && !c->paused)
                break;
            on_write(c->bev, c);
        }
    }
    if (getenv("HQ_FUZZ_SHOW") != NULL) /* to read what was answered */
        fprintf(stderr, "--- %zu bytes answered, in pieces of %zu:\n%.*s\n", outn,
                piece, (int)outn, out);
    conn_free(c);
    /* bufferevent_free() leaves closing the socket to the loop. */
    event_base_loop(lp.base, EVLOOP_NONBLOCK);
    close(sv[1]);
    return outn;
}

/* Drop the interim "100 Continue" answers (sent or not by how bytes came). */
static size_t
drop_continue(char *out, size_t n)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    char *p;

    while ((p = memmem(out, n, cont, sizeof(cont) - 1)) != NULL) {
        memmove(p, p + sizeof(cont) - 1, n - (size_t)(p - out) - (sizeof(cont) - 1));
        n -= sizeof(cont) - 1;
    }
    return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    static char whole[16384], pieces[16384];
    size_t piece, nw, np;

    if (!ready) {
        setup();
        ready = 1;
    }
    if (size == 0)
        return 0;
    piece = data[0] ? data[0] : size - 1;
    data++;
    size--;
    in.has_secret = memmem(data, size, "webhook-signature:", 18) != NULL;

    nw = run(data, size, size ? size : 1, whole, sizeof(whole));
    if (nw < sizeof(whole))
        check_answers(whole, nw);
    if (piece >= size)
        return 0;
    /* However the bytes are split, the answers are the same. */
    np = run(data, size, piece, pieces, sizeof(pieces));
    if (nw < sizeof(whole) && np < sizeof(pieces)) {
        check_answers(pieces, np);
        nw = drop_continue(whole, nw);
        np = drop_continue(pieces, np);
        HQ_FUZZ_CHECK(nw == np && memcmp(whole, pieces, nw) == 0,
                      "in one piece:\n%.*s\nin pieces of %zu:\n%.*s", (int)nw, whole,
                      piece, (int)np, pieces);
    }
    return 0;
}
