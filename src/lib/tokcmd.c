/*
 * [api] token_command runs (see tokcmd_int.h).
 *
 * DESIGN: the child is run by child.c (spawned into a process group of its
 * own, read on the loop, reaped, its group killed on timeout). Only the
 * first line of stdout is kept (the rest is read and dropped); stdin and
 * stderr are /dev/null, since what such a program says may be the token
 * itself, and the kept line is wiped once the callback returned.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "child_int.h"
#include "tokcmd_int.h"

struct hq__tokcmd {
    hq__tokcmd_fn *fn;
    void *arg;
    struct hq__child *child;
    int64_t timeout_ms;
    int line_done;             /* the first line is complete */
    size_t len;
    char line[HQ_TOKEN_MAX + 3]; /* the first line, maybe cut */
};

static void
release(struct hq__tokcmd *t)
{
    explicit_bzero(t->line, sizeof(t->line));
    free(t);
}

static void
on_output(const char *buf, size_t len, void *arg)
{
    struct hq__tokcmd *t = arg;

    for (size_t i = 0; i < len && !t->line_done; i++) {
        if (buf[i] == '\n')
            t->line_done = 1;
        else if (t->len < sizeof(t->line) - 1)
            t->line[t->len++] = buf[i];
    }
}

static void
on_done(int status, int timed_out, void *arg)
{
    struct hq__tokcmd *t = arg;
    char why[128];
    size_t n = t->len;

    if (timed_out) {
        snprintf(why, sizeof(why), "killed after %lld ms",
                 (long long)t->timeout_ms);
    } else if (WIFSIGNALED(status)) {
        snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(status));
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(why, sizeof(why), "exited with %d", WEXITSTATUS(status));
    } else {
        if (n > 0 && t->line[n - 1] == '\r')
            n--;
        why[0] = '\0';
        if (n == 0)
            snprintf(why, sizeof(why), "printed no token");
        else if (n > HQ_TOKEN_MAX)
            snprintf(why, sizeof(why), "printed a token over %d bytes",
                     HQ_TOKEN_MAX);
        for (size_t i = 0; i < n && why[0] == '\0'; i++)
            if ((unsigned char)t->line[i] < 0x20 || t->line[i] == 0x7f)
                snprintf(why, sizeof(why),
                         "printed a token with a control character");
        if (why[0] == '\0') {
            t->line[n] = '\0';
            t->fn(t->line, n, NULL, t->arg);
            release(t);
            return;
        }
    }
    t->fn(NULL, 0, why, t->arg);
    release(t);
}

int
hq__tokcmd_start(struct event_base *base, const char *program,
                 const char *customer, const char *reason, int64_t timeout_ms,
                 hq__tokcmd_fn *fn, void *arg, struct hq__tokcmd **out,
                 struct hq__err *err)
{
    struct hq__tokcmd *t;
    struct hq__child_spec spec;
    char *vars[2] = {NULL, NULL}, **env = NULL;
    char *argv[3] = {(char *)program, (char *)customer, NULL};
    int rc;

    *out = NULL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return hq__err_set(err, HQ_ENOMEM, "out of memory");
    t->fn = fn;
    t->arg = arg;
    t->timeout_ms = timeout_ms;
    if (asprintf(&vars[0], "HOOKQ_CUSTOMER=%s", customer) < 0)
        vars[0] = NULL;
    if (asprintf(&vars[1], "HOOKQ_REASON=%s", reason) < 0)
        vars[1] = NULL;
    if (vars[0] && vars[1])
        env = hq__child_env(vars, 2);
    if (!env) {
        rc = hq__err_set(err, HQ_ENOMEM, "out of memory");
    } else {
        memset(&spec, 0, sizeof(spec));
        spec.argv = argv;
        spec.env = env;
        spec.timeout_ms = timeout_ms;
        rc = hq__child_start(base, &spec, on_output, on_done, t, &t->child,
                             err);
    }
    free(env);
    free(vars[0]);
    free(vars[1]);
    if (rc != HQ_OK) {
        free(t);
        return rc;
    }
    *out = t;
    return HQ_OK;
}

void
hq__tokcmd_cancel(struct hq__tokcmd *t)
{
    if (!t)
        return;
    hq__child_cancel(t->child);
    release(t);
}
