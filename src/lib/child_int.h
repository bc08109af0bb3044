/*
 * A child process run on a libevent loop, without blocking it and without
 * a thread: the spawning, feeding, reading, timeout and reaping shared by
 * exec: deliveries (deliver.c) and [api] token_command (tokcmd.c).
 *
 * The child runs `argv[0]` (an absolute path) with `env`, in a process
 * group of its own, with a clean signal mask and SIGPIPE, SIGINT, SIGTERM
 * and SIGHUP at their defaults. Its stdin is `input` (fed as the child
 * reads it) or /dev/null; its stdout, and its stderr too when asked, go to
 * one pipe handed to `out` chunk by chunk; otherwise stderr is /dev/null.
 * Past the timeout the whole group is killed (SIGKILL). `done` is called
 * once with the wait status, after the output closed and the child exited.
 */
#ifndef HQ_CHILD_INT_H
#define HQ_CHILD_INT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "common_int.h"

struct hq__child;

/* A chunk of the child's output (valid during the call only). */
typedef void hq__child_out_fn(const char *buf, size_t len, void *arg);

/*
 * The end, once: `status` as from waitpid (a child reaped elsewhere counts
 * as exit 127), `timed_out` 1 when it was killed past the timeout. The run
 * is freed after the callback returns.
 */
typedef void hq__child_done_fn(int status, int timed_out, void *arg);

struct hq__child_spec {
    char *const *argv;     /* NULL-terminated; argv[0] the program */
    char *const *env;      /* NULL-terminated, as from hq__child_env */
    const char *input;     /* stdin, copied; NULL = /dev/null */
    size_t input_len;
    int merge_stderr;      /* 1: stderr into the output too; 0: /dev/null */
    int64_t timeout_ms;    /* 0 = none */
};

/*
 * Start the child on `base`. Returns HQ_OK with the run in *out (`done` is
 * then called exactly once, unless cancelled), or HQ_EIO / HQ_ENOMEM with
 * `err` naming the program (neither callback is called).
 */
int hq__child_start(struct event_base *base, const struct hq__child_spec *spec,
                    hq__child_out_fn *out_fn, hq__child_done_fn *done_fn,
                    void *arg, struct hq__child **out, struct hq__err *err);

/* Kill the group and reap the child, free; no callback is called. */
void hq__child_cancel(struct hq__child *c);

/*
 * The process environment without its HOOKQ_* variables (they may hold
 * secrets), plus the `nvars` "NAME=value" strings of `vars` (borrowed).
 * Free the array (not its strings) with free(). NULL when out of memory.
 */
char **hq__child_env(char *const *vars, size_t nvars);

#endif /* HQ_CHILD_INT_H */
