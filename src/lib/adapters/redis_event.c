/*
 * hiredis on libevent (see redis_event_int.h).
 *
 * DESIGN: hiredis asks for reads and writes through five hooks (ac->ev).
 * The read event is persistent: addRead adds it once, delRead removes it.
 * A write asked for on a connected context activates `soon`, an event
 * without a file descriptor that runs after the callbacks already active
 * in this loop pass; it calls redisAsyncHandleWrite(), so everything that
 * pass queued (a flight's calls, a WAIT) leaves in one write. Only a write
 * that falls short (hiredis asks again from inside it), or one before the
 * connection is up (hiredis learns the connect's outcome from the first
 * writable event), arms the real write event until hiredis says it is done.
 * hiredis may free the context, and so call cleanup, from inside a write:
 * cleanup then leaves the struct to `soon`'s callback to free.
 */
#include <stdlib.h>

#include <event2/event.h>
#include <hiredis/async.h>

#include "redis_event_int.h"

struct revents {
    redisAsyncContext *ac;
    struct event *rev;  /* EV_READ | EV_PERSIST */
    struct event *wev;  /* EV_WRITE | EV_PERSIST: room in the socket */
    struct event *soon; /* write at the end of this pass */
    unsigned reading : 1, writing : 1, in_soon : 1, freed : 1;
};

static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct revents *e = arg;

    (void)fd;
    (void)what;
    redisAsyncHandleRead(e->ac);
}

static void
on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct revents *e = arg;

    (void)fd;
    (void)what;
    redisAsyncHandleWrite(e->ac);
}

static void
on_soon(evutil_socket_t fd, short what, void *arg)
{
    struct revents *e = arg;

    (void)fd;
    (void)what;
    e->in_soon = 1;
    redisAsyncHandleWrite(e->ac);
    if (e->freed) { /* cleanup ran inside the write */
        free(e);
        return;
    }
    e->in_soon = 0;
}

static void
add_read(void *arg)
{
    struct revents *e = arg;

    if (!e->reading && event_add(e->rev, NULL) == 0)
        e->reading = 1;
}

static void
del_read(void *arg)
{
    struct revents *e = arg;

    if (e->reading)
        event_del(e->rev);
    e->reading = 0;
}

static void
add_write(void *arg)
{
    struct revents *e = arg;

    if (e->writing)
        return; /* the write event is armed: it writes when there is room */
    if ((e->ac->c.flags & REDIS_CONNECTED) && !e->in_soon) {
        event_active(e->soon, EV_TIMEOUT, 0);
        return;
    }
    /* Connecting, or the socket is full: wait until it is writable. */
    if (event_add(e->wev, NULL) == 0)
        e->writing = 1;
}

static void
del_write(void *arg)
{
    struct revents *e = arg;

    if (e->writing)
        event_del(e->wev);
    e->writing = 0;
}

static void
cleanup(void *arg)
{
    struct revents *e = arg;

    event_free(e->rev);
    event_free(e->wev);
    if (e->in_soon) {
        /* Inside on_soon(): event_free() of the running event is safe, and
         * on_soon() frees `e` when the write returns. */
        event_free(e->soon);
        e->freed = 1;
        return;
    }
    event_free(e->soon);
    free(e);
}

int
hq__redis_event_attach(redisAsyncContext *ac, struct event_base *base)
{
    struct revents *e;

    if (ac->ev.data != NULL)
        return REDIS_ERR;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return REDIS_ERR;
    e->ac = ac;
    e->rev = event_new(base, ac->c.fd, EV_READ | EV_PERSIST, on_readable, e);
    e->wev = event_new(base, ac->c.fd, EV_WRITE | EV_PERSIST, on_writable, e);
    e->soon = event_new(base, -1, 0, on_soon, e);
    if (e->rev == NULL || e->wev == NULL || e->soon == NULL) {
        if (e->rev)
            event_free(e->rev);
        if (e->wev)
            event_free(e->wev);
        if (e->soon)
            event_free(e->soon);
        free(e);
        return REDIS_ERR;
    }
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = e;
    /* As hiredis's adapter: the connect's outcome shows as writable (or
     * readable, on an error). */
    add_read(e);
    add_write(e);
    return REDIS_OK;
}
