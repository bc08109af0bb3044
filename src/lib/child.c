/*
 * A child process on a libevent loop (see child_int.h).
 *
 * DESIGN: posix_spawn (vfork-like, safe in a threaded process) with the
 * child in its own process group. Its stdin, when fed, is a socketpair, so
 * that writing to a child that has exited is EPIPE, not SIGPIPE, thanks to
 * MSG_NOSIGNAL; its output is a pipe. Both are non-blocking and watched by
 * libevent. The child is reaped with waitpid(WNOHANG) once its output
 * closed, polled on a short, growing timer since it may close its output
 * before it exits; SIGCHLD is not used, as libevent lets only one base
 * watch signals. On timeout the group is killed with SIGKILL and the
 * output no longer waited for (grandchildren may hold it open). The read
 * buffer is wiped after use: what a token_command prints is a secret.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child_int.h"

extern char **environ;

struct hq__child {
    hq__child_out_fn *out_fn;
    hq__child_done_fn *done_fn;
    void *arg;
    pid_t pid;
    int in_fd, out_fd;           /* -1 once closed */
    struct event *in_ev, *out_ev, *timer_ev, *reap_ev;
    char *input;
    size_t input_len, written;
    int timed_out;
    int reap_delay_ms;
};

static void
release(struct hq__child *c)
{
    if (c->in_ev)
        event_free(c->in_ev);
    if (c->out_ev)
        event_free(c->out_ev);
    if (c->timer_ev)
        event_free(c->timer_ev);
    if (c->reap_ev)
        event_free(c->reap_ev);
    if (c->in_fd >= 0)
        close(c->in_fd);
    if (c->out_fd >= 0)
        close(c->out_fd);
    free(c->input);
    free(c);
}

static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hq__child *c = arg;
    struct timeval tv;
    int status;
    pid_t r;

    (void)fd;
    (void)what;
    r = waitpid(c->pid, &status, WNOHANG);
    if (r == c->pid || (r < 0 && errno == ECHILD)) {
        if (r < 0)
            status = 0x7f00; /* reaped elsewhere: treat as exit 127 */
        c->done_fn(status, c->timed_out, c->arg);
        release(c);
        return;
    }
    /* Output closed but not exited yet: look again soon, backing off. */
    c->reap_delay_ms = c->reap_delay_ms ? c->reap_delay_ms * 2 : 1;
    if (c->reap_delay_ms > 50)
        c->reap_delay_ms = 50;
    tv.tv_sec = 0;
    tv.tv_usec = c->reap_delay_ms * 1000;
    evtimer_add(c->reap_ev, &tv);
}

static void
close_in(struct hq__child *c)
{
    if (c->in_ev) {
        event_free(c->in_ev);
        c->in_ev = NULL;
    }
    if (c->in_fd >= 0) {
        close(c->in_fd);
        c->in_fd = -1;
    }
}

static void
close_out(struct hq__child *c)
{
    if (c->out_ev) {
        event_free(c->out_ev);
        c->out_ev = NULL;
    }
    if (c->out_fd >= 0) {
        close(c->out_fd);
        c->out_fd = -1;
    }
}

static void
in_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hq__child *c = arg;

    (void)what;
    while (c->written < c->input_len) {
        ssize_t n = send(fd, c->input + c->written,
                         c->input_len - c->written, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* EV_PERSIST: called again when writable */
        if (n < 0) {
            /* EPIPE: the child does not read its input; its exit status
             * decides the outcome. */
            break;
        }
        c->written += (size_t)n;
    }
    close_in(c);
}

static void
out_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hq__child *c = arg;
    char buf[4096];
    ssize_t n;

    (void)what;
    for (;;) {
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            explicit_bzero(buf, sizeof(buf));
            return;
        }
        if (n <= 0)
            break;
        c->out_fn(buf, (size_t)n, c->arg);
    }
    explicit_bzero(buf, sizeof(buf));
    /* EOF (or an error): the child closed its output, most likely exited. */
    close_out(c);
    reap_cb(-1, 0, c);
}

static void
kill_group(struct hq__child *c)
{
    kill(-c->pid, SIGKILL);
    kill(c->pid, SIGKILL);
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hq__child *c = arg;

    (void)fd;
    (void)what;
    c->timed_out = 1;
    kill_group(c);
    close_in(c);
    close_out(c); /* grandchildren may keep it open */
    reap_cb(-1, 0, c);
}

char **
hq__child_env(char *const *vars, size_t nvars)
{
    size_t n = 0, k = 0;
    char **env;

    while (environ[n])
        n++;
    env = calloc(n + nvars + 1, sizeof(*env));
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "HOOKQ_", 6) != 0)
            env[k++] = environ[i];
    for (size_t i = 0; i < nvars; i++)
        env[k++] = vars[i];
    env[k] = NULL;
    return env;
}

int
hq__child_start(struct event_base *base, const struct hq__child_spec *spec,
                hq__child_out_fn *out_fn, hq__child_done_fn *done_fn,
                void *arg, struct hq__child **out, struct hq__err *err)
{
    const char *prog = spec->argv[0];
    struct hq__child *c;
    int sv[2] = {-1, -1}, po[2] = {-1, -1}, rc;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, dflt;
    struct timeval tv;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return hq__err_set(err, HQ_ENOMEM, "out of memory");
    c->out_fn = out_fn;
    c->done_fn = done_fn;
    c->arg = arg;
    c->in_fd = c->out_fd = -1;
    if (spec->input) {
        c->input = malloc(spec->input_len ? spec->input_len : 1);
        if (!c->input) {
            free(c);
            return hq__err_set(err, HQ_ENOMEM, "out of memory");
        }
        memcpy(c->input, spec->input, spec->input_len);
        c->input_len = spec->input_len;
    }
    if ((spec->input &&
         socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) ||
        pipe2(po, O_CLOEXEC) < 0) {
        rc = hq__err_set(err, HQ_EIO, "cannot make pipes for '%s': %s", prog,
                         strerror(errno));
        goto fail_fds;
    }
    posix_spawn_file_actions_init(&fa);
    if (spec->input)
        posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    if (spec->merge_stderr)
        posix_spawn_file_actions_adddup2(&fa, po[1], 2);
    else
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    sigaddset(&dflt, SIGINT);
    sigaddset(&dflt, SIGTERM);
    sigaddset(&dflt, SIGHUP);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &dflt);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                        POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    rc = posix_spawn(&c->pid, prog, &fa, &attr, spec->argv, spec->env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (sv[1] >= 0)
        close(sv[1]);
    close(po[1]);
    sv[1] = po[1] = -1;
    if (rc != 0) {
        rc = hq__err_set(err, HQ_EIO, "cannot run '%s': %s", prog,
                         strerror(rc));
        goto fail_fds;
    }
    c->in_fd = sv[0];
    c->out_fd = po[0];
    c->out_ev = event_new(base, c->out_fd, EV_READ | EV_PERSIST, out_cb, c);
    c->timer_ev = evtimer_new(base, timeout_cb, c);
    c->reap_ev = evtimer_new(base, reap_cb, c);
    evutil_make_socket_nonblocking(c->out_fd);
    if (c->in_fd >= 0) {
        evutil_make_socket_nonblocking(c->in_fd);
        c->in_ev = event_new(base, c->in_fd, EV_WRITE | EV_PERSIST, in_cb, c);
    }
    if (!c->out_ev || !c->timer_ev || !c->reap_ev ||
        (c->in_fd >= 0 && !c->in_ev)) {
        kill_group(c);
        waitpid(c->pid, NULL, 0);
        release(c);
        return hq__err_set(err, HQ_ENOMEM, "out of memory");
    }
    if (c->in_ev)
        event_add(c->in_ev, NULL);
    event_add(c->out_ev, NULL);
    if (spec->timeout_ms > 0) {
        tv.tv_sec = spec->timeout_ms / 1000;
        tv.tv_usec = (spec->timeout_ms % 1000) * 1000;
        evtimer_add(c->timer_ev, &tv);
    }
    *out = c;
    return HQ_OK;
fail_fds:
    for (int i = 0; i < 2; i++) {
        if (sv[i] >= 0)
            close(sv[i]);
        if (po[i] >= 0)
            close(po[i]);
    }
    free(c->input);
    free(c);
    return rc;
}

void
hq__child_cancel(struct hq__child *c)
{
    if (!c)
        return;
    kill_group(c);
    waitpid(c->pid, NULL, 0);
    release(c);
}
