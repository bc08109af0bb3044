/*
 * [api] token_command runs (see tokcmd_int.h).
 *
 * DESIGN: as an exec delivery (deliver.c) runs its child: posix_spawn
 * (safe in a threaded process) into a process group of its own, the output
 * read by the loop through a non-blocking pipe, the child reaped with
 * waitpid(WNOHANG) once its output closed (polled on a short, growing
 * timer), and the group killed on timeout. Only the first line of stdout is
 * kept (the rest is read and dropped); stderr goes to /dev/null, since what
 * such a program says may be the token itself.
 * NEEDSWORK: deliver.c's exec and this share the spawning and reaping; a
 * small child-process helper could serve both.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tokcmd_int.h"

extern char **environ;

struct hq__tokcmd {
    hq__tokcmd_fn *fn;
    void *arg;
    pid_t pid;
    int out_fd;                /* -1 once closed */
    struct event *out_ev, *timer_ev, *reap_ev;
    int64_t timeout_ms;
    int timed_out;
    int line_done;             /* the first line is complete */
    int reap_delay_ms;
    size_t len;
    char line[HQ_TOKEN_MAX + 3]; /* the first line, maybe cut */
};

static void
release(struct hq__tokcmd *t)
{
    if (t->out_ev)
        event_free(t->out_ev);
    if (t->timer_ev)
        event_free(t->timer_ev);
    if (t->reap_ev)
        event_free(t->reap_ev);
    if (t->out_fd >= 0)
        close(t->out_fd);
    explicit_bzero(t->line, sizeof(t->line));
    free(t);
}

static void
finish(struct hq__tokcmd *t, int status)
{
    char why[128];
    size_t n = t->len;

    if (t->timed_out) {
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

static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hq__tokcmd *t = arg;
    struct timeval tv;
    int status;
    pid_t r;

    (void)fd;
    (void)what;
    r = waitpid(t->pid, &status, WNOHANG);
    if (r == t->pid || (r < 0 && errno == ECHILD)) {
        if (r < 0)
            status = 0x7f00; /* reaped elsewhere: as exit 127 */
        finish(t, status);
        return;
    }
    t->reap_delay_ms = t->reap_delay_ms ? t->reap_delay_ms * 2 : 1;
    if (t->reap_delay_ms > 50)
        t->reap_delay_ms = 50;
    tv.tv_sec = 0;
    tv.tv_usec = t->reap_delay_ms * 1000;
    evtimer_add(t->reap_ev, &tv);
}

static void
close_out(struct hq__tokcmd *t)
{
    if (t->out_ev) {
        event_free(t->out_ev);
        t->out_ev = NULL;
    }
    if (t->out_fd >= 0) {
        close(t->out_fd);
        t->out_fd = -1;
    }
}

static void
out_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hq__tokcmd *t = arg;
    char buf[4096];
    ssize_t n;

    (void)what;
    for (;;) {
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n && !t->line_done; i++) {
            if (buf[i] == '\n')
                t->line_done = 1;
            else if (t->len < sizeof(t->line) - 1)
                t->line[t->len++] = buf[i];
        }
    }
    explicit_bzero(buf, sizeof(buf));
    /* EOF: the child closed its output, most likely it exited. */
    close_out(t);
    reap_cb(-1, 0, t);
}

static void
kill_child(struct hq__tokcmd *t)
{
    kill(-t->pid, SIGKILL);
    kill(t->pid, SIGKILL);
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct hq__tokcmd *t = arg;

    (void)fd;
    (void)what;
    t->timed_out = 1;
    kill_child(t);
    close_out(t); /* grandchildren may keep it open */
    reap_cb(-1, 0, t);
}

/* environ without HOOKQ_*, plus HOOKQ_CUSTOMER and HOOKQ_REASON. */
static char **
child_env(const char *customer, const char *reason, char *vars[2])
{
    size_t n = 0, k = 0;
    char **env;

    while (environ[n])
        n++;
    env = calloc(n + 3, sizeof(*env));
    if (!env)
        return NULL;
    if (asprintf(&vars[0], "HOOKQ_CUSTOMER=%s", customer) < 0)
        vars[0] = NULL;
    if (asprintf(&vars[1], "HOOKQ_REASON=%s", reason) < 0)
        vars[1] = NULL;
    if (!vars[0] || !vars[1]) {
        free(env);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "HOOKQ_", 6) != 0)
            env[k++] = environ[i];
    env[k++] = vars[0];
    env[k++] = vars[1];
    env[k] = NULL;
    return env;
}

int
hq__tokcmd_start(struct event_base *base, const char *program,
                 const char *customer, const char *reason, int64_t timeout_ms,
                 hq__tokcmd_fn *fn, void *arg, struct hq__tokcmd **out,
                 struct hq__err *err)
{
    struct hq__tokcmd *t;
    int po[2] = {-1, -1}, rc;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, dflt;
    char *vars[2] = {NULL, NULL}, **env;
    char *argv[3] = {(char *)program, (char *)customer, NULL};
    struct timeval tv;

    *out = NULL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return hq__err_set(err, HQ_ENOMEM, "out of memory");
    t->fn = fn;
    t->arg = arg;
    t->out_fd = -1;
    t->timeout_ms = timeout_ms;
    if (pipe2(po, O_CLOEXEC) < 0) {
        rc = hq__err_set(err, HQ_EIO, "cannot make a pipe for '%s': %s",
                         program, strerror(errno));
        free(t);
        return rc;
    }
    env = child_env(customer, reason, vars);
    if (!env) {
        close(po[0]);
        close(po[1]);
        free(vars[0]);
        free(vars[1]);
        free(t);
        return hq__err_set(err, HQ_ENOMEM, "out of memory");
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
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
    rc = posix_spawn(&t->pid, program, &fa, &attr, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(env);
    free(vars[0]);
    free(vars[1]);
    close(po[1]);
    if (rc != 0) {
        close(po[0]);
        free(t);
        return hq__err_set(err, HQ_EIO, "cannot run '%s': %s", program,
                           strerror(rc));
    }
    t->out_fd = po[0];
    evutil_make_socket_nonblocking(t->out_fd);
    t->out_ev = event_new(base, t->out_fd, EV_READ | EV_PERSIST, out_cb, t);
    t->timer_ev = evtimer_new(base, timeout_cb, t);
    t->reap_ev = evtimer_new(base, reap_cb, t);
    if (!t->out_ev || !t->timer_ev || !t->reap_ev) {
        kill_child(t);
        waitpid(t->pid, NULL, 0);
        release(t);
        return hq__err_set(err, HQ_ENOMEM, "out of memory");
    }
    event_add(t->out_ev, NULL);
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(t->timer_ev, &tv);
    *out = t;
    return HQ_OK;
}

void
hq__tokcmd_cancel(struct hq__tokcmd *t)
{
    if (!t)
        return;
    kill_child(t);
    waitpid(t->pid, NULL, 0);
    release(t);
}
