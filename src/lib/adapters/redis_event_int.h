/*
 * hiredis's asynchronous connections on a libevent loop, at one write and
 * no event changes per loop pass.
 *
 * hiredis 0.14's own adapter (hiredis/adapters/libevent.h) makes both of
 * its events one-shot: every reply read costs an epoll_ctl to take the read
 * event out and one to put it back, and every command arms the write event
 * (an epoll_ctl), waits for the next pass to write, then disarms it (one
 * more): four epoll_ctl and an extra loop pass per call or flight. This one
 * keeps the read event persistent, and writes what the pass's commands
 * queued at the end of that pass, straight from the loop; the write event
 * is armed only while connecting or when the socket did not take it all.
 *
 * Used by the one Redis connection layer (conn.c, router.c); everything
 * runs on the loop's thread.
 */
#ifndef HQ_REDIS_EVENT_INT_H
#define HQ_REDIS_EVENT_INT_H

#include <hiredis/async.h>

struct event_base;

/* Attach `ac` (not attached yet) to `base`: REDIS_OK, or REDIS_ERR (out of
 * memory, or attached already). */
int hq__redis_event_attach(redisAsyncContext *ac, struct event_base *base);

#endif /* HQ_REDIS_EVENT_INT_H */
