/*
 * [api] token_command (DESIGN §3.4 step 4): run `PROGRAM CUSTOMER` on a
 * worker loop to get a fresh API token, without blocking the loop.
 *
 * The child gets the customer as its one argument, HOOKQ_CUSTOMER and
 * HOOKQ_REASON ("401", "403" or "missing") in its environment (the other
 * HOOKQ_* variables, which may hold secrets, are removed), /dev/null as
 * stdin and stderr, and its own process group. Exit 0 with a non-empty
 * first line of stdout (its \n or \r\n dropped, at most HQ_TOKEN_MAX bytes,
 * no control characters) is the token; anything else, or no exit within
 * the timeout (the group is then killed), is a failure. What the program
 * prints is never put in a message: it is a secret.
 */
#ifndef HQ_TOKCMD_INT_H
#define HQ_TOKCMD_INT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "common_int.h"

struct hq__tokcmd;

/*
 * The outcome, once: `token` (NUL-terminated, valid during the call) or
 * NULL with `why` ("exited with 3", "killed after 10000 ms", "printed no
 * token"). The run is freed after the callback returns.
 */
typedef void hq__tokcmd_fn(const char *token, size_t len, const char *why,
                           void *arg);

/*
 * Start `program` for `customer` on `base`. Returns HQ_OK with the run in
 * *out (fn is then called exactly once, unless cancelled), or HQ_EIO /
 * HQ_ENOMEM with the reason in `err` (fn is not called).
 */
int hq__tokcmd_start(struct event_base *base, const char *program,
                     const char *customer, const char *reason,
                     int64_t timeout_ms, hq__tokcmd_fn *fn, void *arg,
                     struct hq__tokcmd **out, struct hq__err *err);

/* Kill and reap the child, free; the callback is not called. */
void hq__tokcmd_cancel(struct hq__tokcmd *t);

#endif /* HQ_TOKCMD_INT_H */
