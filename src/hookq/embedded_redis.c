/*
 * The embedded redis-server of `hookq run` (see embedded_redis.h), and the
 * store options every command uses (hk_cli_store_options).
 *
 * The PING here is a raw RESP exchange on the unix socket rather than
 * hiredis: it runs before anything else exists, and it must tell "loading
 * the AOF" (-LOADING, keep waiting) from "not there" (keep waiting, unless
 * the child exited). While it loads, INFO persistence (allowed during
 * loading) gives the progress, which is logged every second or so: a big
 * AOF can take minutes, and an operator must see that it moves.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "embedded_redis.h"
#include "log.h"

#include "clock_int.h"
#include "conn_int.h"

#include "banned_int.h"

struct hk_embedded_redis {
    pid_t pid;
    int lock_fd;
    char dir[256];
    char url[300];
};

int
hk_embedded_redis_dir(const char *data_dir, char *buf, size_t size)
{
    char cwd[4096];
    int n;

    if (data_dir[0] == '/') {
        n = snprintf(buf, size, "%s", data_dir);
    } else {
        if (getcwd(cwd, sizeof(cwd)) == NULL)
            return -1;
        while (data_dir[0] == '.' && data_dir[1] == '/')
            data_dir += 2;
        if (strcmp(data_dir, ".") == 0)
            data_dir = "";
        n = snprintf(buf, size, "%s%s%s", cwd,
                     cwd[strlen(cwd) - 1] == '/' || !data_dir[0] ? "" : "/",
                     data_dir);
    }
    if (n < 0 || (size_t)n >= size)
        return -1;
    /* No trailing slash, so that "dir/file" reads well. */
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
    return 0;
}

int
hk_embedded_redis_url_of(const char *data_dir, char *buf, size_t size)
{
    char dir[256];
    struct sockaddr_un sun;
    int n;

    if (hk_embedded_redis_dir(data_dir, dir, sizeof(dir)) != 0)
        return -1;
    if (strlen(dir) + 1 + strlen(HQ_EMBEDDED_SOCKET) >= sizeof(sun.sun_path))
        return -1;
    n = snprintf(buf, size, "unix://%s/%s", dir, HQ_EMBEDDED_SOCKET);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int
hk_cli_store_options(struct hk_cli *cli, struct hq_store_options *opts)
{
    static char url[300];

    memset(opts, 0, sizeof(*opts));
    opts->ns = cli->cfg->redis.ns;
    opts->shards = cli->cfg->redis.shards;
    opts->sentinels = cli->cfg->redis.sentinels.text;
    opts->sentinel_master = cli->cfg->redis.sentinel_master;
    opts->sentinel_user = cli->cfg->redis.sentinel_user;
    opts->sentinel_password = cli->cfg->redis.sentinel_password;
    if (cli->cfg->redis.url != NULL || cli->cfg->redis.sentinels.text != NULL) {
        opts->url = cli->cfg->redis.url;
        return 0;
    }
    if (hk_embedded_redis_url_of(cli->cfg->redis.data_dir, url, sizeof(url)) !=
        0) {
        hk_cli_error(cli, "config",
                     "[redis] data_dir '%s': path too long for a unix socket; "
                     "use a shorter data_dir",
                     cli->cfg->redis.data_dir);
        return -1;
    }
    opts->url = url;
    return 0;
}

int
hk_embedded_redis_ping(const char *path, int timeout_ms)
{
    struct sockaddr_un sun;
    struct pollfd pfd;
    char buf[128];
    size_t got = 0;
    int64_t deadline = hq__mono_ms() + timeout_ms;
    int fd, rc = -1;

    if (strlen(path) >= sizeof(sun.sun_path))
        return -1;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
        goto out;
    if (send(fd, "PING\r\n", 6, MSG_NOSIGNAL) != 6)
        goto out;
    pfd.fd = fd;
    pfd.events = POLLIN;
    while (got < sizeof(buf) - 1 && !memchr(buf, '\n', got)) {
        int64_t left = deadline - hq__mono_ms();
        ssize_t n;
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            goto out;
        n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n <= 0)
            goto out;
        got += (size_t)n;
    }
    buf[got] = '\0';
    if (strncmp(buf, "+PONG", 5) == 0)
        rc = 1;
    else if (strncmp(buf, "-LOADING", 8) == 0)
        rc = 0;
out:
    close(fd);
    return rc;
}

/* The value of `field` in INFO text, as a string in `out` ("" if absent). */
static void
info_field(const char *info, const char *field, char *out, size_t size)
{
    size_t fl = strlen(field);
    const char *p = info;

    out[0] = '\0';
    while ((p = strstr(p, field)) != NULL) {
        if ((p == info || p[-1] == '\n') && p[fl] == ':') {
            size_t n = strcspn(p + fl + 1, "\r\n");

            snprintf(out, size, "%.*s", (int)n, p + fl + 1);
            return;
        }
        p += fl;
    }
}

/*
 * Log how far the redis-server on `path` is with loading its data (INFO
 * persistence: loading_loaded_perc, loading_eta_seconds, ...).
 */
static void
log_loading(const char *path)
{
    struct sockaddr_un sun;
    struct pollfd pfd;
    char buf[8192], perc[32], eta[32], loaded[32], total[32];
    size_t got = 0;
    int64_t deadline = hq__mono_ms() + 1000;
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path))
        return;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
        send(fd, "INFO persistence\r\n", 18, MSG_NOSIGNAL) != 18)
        goto out;
    pfd.fd = fd;
    pfd.events = POLLIN;
    buf[0] = '\0';
    /* A bulk string: "$LEN\r\n" then the text; the fields we want come early. */
    while (got < sizeof(buf) - 1 && !strstr(buf, "loading_eta_seconds:")) {
        int64_t left = deadline - hq__mono_ms();
        ssize_t n;

        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
    }
    buf[got] = '\0';
    info_field(buf, "loading_loaded_perc", perc, sizeof(perc));
    info_field(buf, "loading_eta_seconds", eta, sizeof(eta));
    info_field(buf, "loading_loaded_bytes", loaded, sizeof(loaded));
    info_field(buf, "loading_total_bytes", total, sizeof(total));
    if (perc[0] != '\0')
        hk_log_kv(HQ_LOG_INFO, "embedded redis is loading its data", "percent",
                  perc, "loaded_bytes", loaded[0] ? loaded : NULL, "total_bytes",
                  total[0] ? total : NULL, "eta_s", eta[0] ? eta : NULL, NULL);
    else
        hk_log_kv(HQ_LOG_INFO, "embedded redis is loading its data", NULL);
out:
    close(fd);
}

/* Create `path` and its missing parents; the last one with `mode`. */
static int
mkdirs(const char *path, mode_t mode)
{
    char tmp[256];
    size_t len = strlen(path);

    if (len >= sizeof(tmp))
        return -1;
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return -1;
    return chmod(tmp, mode);
}

static const char *
find_redis_server(char *buf, size_t size)
{
    const char *env = getenv("REDIS_SERVER");
    const char *path = getenv("PATH");
    static const char *const fixed[] = {"/usr/bin", "/usr/sbin",
                                        "/usr/local/bin"};

    if (env != NULL && env[0] != '\0')
        return access(env, X_OK) == 0 ? env : NULL;
    while (path != NULL && *path) {
        const char *colon = strchr(path, ':');
        size_t n = colon ? (size_t)(colon - path) : strlen(path);
        if (n > 0 &&
            (size_t)snprintf(buf, size, "%.*s/redis-server", (int)n, path) <
                size &&
            access(buf, X_OK) == 0)
            return buf;
        path = colon ? colon + 1 : NULL;
    }
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        snprintf(buf, size, "%s/redis-server", fixed[i]);
        if (access(buf, X_OK) == 0)
            return buf;
    }
    return NULL;
}

/* The pid in `path`, or 0. */
static pid_t
read_pid(const char *path)
{
    char buf[32];
    ssize_t n;
    long v;
    char *end;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    v = strtol(buf, &end, 10);
    if (end == buf || v <= 1 || v > 0x7fffffff)
        return 0;
    return (pid_t)v;
}

/*
 * 1 when `pid` is a running redis-server working in `dir` (redis chdirs to
 * its `dir`), so that a stale pid file whose pid now belongs to another
 * redis-server never gets that one stopped.
 */
static int
is_redis_server(pid_t pid, const char *dir)
{
    char path[64], cmd[256], cwd[4096], real[4096];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/cwd", (int)pid);
    n = readlink(path, cwd, sizeof(cwd) - 1);
    if (n <= 0 || realpath(dir, real) == NULL)
        return 0;
    cwd[n] = '\0';
    if (strcmp(cwd, real) != 0)
        return 0;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, cmd, sizeof(cmd) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    cmd[n] = '\0'; /* argv[0] only: up to the first NUL */
    return strstr(cmd, "redis-server") != NULL;
}

/* The last lines of redis.log, to explain a failed start. */
static void
log_tail(const char *dir, char *buf, size_t size)
{
    char path[300];
    char tail[512];
    ssize_t n;
    off_t end;
    int fd;

    buf[0] = '\0';
    snprintf(path, sizeof(path), "%s/%s", dir, HQ_EMBEDDED_LOG);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    end = lseek(fd, 0, SEEK_END);
    if (end > (off_t)sizeof(tail) - 1)
        lseek(fd, end - (off_t)sizeof(tail) + 1, SEEK_SET);
    else
        lseek(fd, 0, SEEK_SET);
    n = read(fd, tail, sizeof(tail) - 1);
    close(fd);
    if (n <= 0)
        return;
    tail[n] = '\0';
    snprintf(buf, size, "; the end of %s:\n%s", path, tail);
}

/* Stop a redis-server left running by a hookq that died. */
static void
stop_stale(const char *dir)
{
    char path[300];
    pid_t pid;

    snprintf(path, sizeof(path), "%s/%s", dir, HQ_EMBEDDED_PIDFILE);
    pid = read_pid(path);
    if (pid == 0 || kill(pid, 0) != 0 || !is_redis_server(pid, dir))
        return;
    hk_log(HQ_LOG_WARN,
           "stopping the redis-server (pid %d) left running in '%s'", (int)pid,
           dir);
    kill(pid, SIGTERM);
    for (int i = 0; i < 1000 && kill(pid, 0) == 0 && is_redis_server(pid, dir);
         i++)
        hq__sleep_ms(10);
    if (kill(pid, 0) == 0 && is_redis_server(pid, dir)) {
        kill(pid, SIGKILL);
        hq__sleep_ms(100);
    }
}

static int
take_lock(struct hk_embedded_redis *r, char *err, size_t errsize)
{
    char path[300], buf[32];
    int n;

    snprintf(path, sizeof(path), "%s/%s", r->dir, HQ_EMBEDDED_LOCK);
    r->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (r->lock_fd < 0) {
        snprintf(err, errsize, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    if (flock(r->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        pid_t other = read_pid(path);
        if (errno == EWOULDBLOCK)
            snprintf(err, errsize,
                     "data_dir '%s' is in use by another hookq "
                     "(pid %d): stop it first, or set another [redis] "
                     "data_dir",
                     r->dir, (int)other);
        else
            snprintf(err, errsize, "cannot lock '%s': %s", path,
                     strerror(errno));
        close(r->lock_fd);
        r->lock_fd = -1;
        return -1;
    }
    n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (ftruncate(r->lock_fd, 0) != 0 ||
        pwrite(r->lock_fd, buf, (size_t)n, 0) != n) {
        /* The pid is only for messages; the lock is what counts. */
    }
    return 0;
}

static pid_t
spawn(const char *server, const char *dir, const char *sock)
{
    char pidfile[300], logfile[300];
    pid_t parent = getpid();
    pid_t pid;

    snprintf(pidfile, sizeof(pidfile), "%s/%s", dir, HQ_EMBEDDED_PIDFILE);
    snprintf(logfile, sizeof(logfile), "%s/%s", dir, HQ_EMBEDDED_LOG);
    pid = fork();
    if (pid != 0)
        return pid;

    /* Child: only async-signal-safe calls until exec. */
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(1);
    {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            dup2(devnull, STDOUT_FILENO);
            if (devnull > STDERR_FILENO)
                close(devnull);
        }
    }
    {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
    }
    execl(server, server, "--port", "0", "--unixsocket", sock,
          "--unixsocketperm", "700", "--dir", dir, "--appendonly", "yes",
          "--appendfsync", "everysec", "--save", "", "--pidfile", pidfile,
          "--logfile", logfile, "--daemonize", "no", (char *)NULL);
    _exit(127);
}

int
hk_embedded_redis_start(const char *data_dir, int timeout_ms,
                        struct hk_embedded_redis **out, char *err,
                        size_t errsize)
{
    struct hk_embedded_redis *r;
    char sock[300], serverbuf[4200], tail[1000];
    const char *server;
    int64_t deadline;
    int status;

    *out = NULL;
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    r->lock_fd = -1;
    r->pid = -1;
    if (hk_embedded_redis_dir(data_dir, r->dir, sizeof(r->dir)) != 0 ||
        hk_embedded_redis_url_of(data_dir, r->url, sizeof(r->url)) != 0) {
        snprintf(err, errsize,
                 "data_dir '%s': path too long for a unix socket "
                 "(at most ~90 characters)",
                 data_dir);
        goto fail;
    }
    snprintf(sock, sizeof(sock), "%s/%s", r->dir, HQ_EMBEDDED_SOCKET);
    server = find_redis_server(serverbuf, sizeof(serverbuf));
    if (server == NULL) {
        snprintf(err, errsize,
                 "cannot find redis-server (in $REDIS_SERVER, "
                 "PATH, /usr/bin or /usr/sbin): install it (make deps), or "
                 "set [redis] url");
        goto fail;
    }
    if (mkdirs(r->dir, 0700) != 0) {
        snprintf(err, errsize, "cannot create data_dir '%s': %s", r->dir,
                 strerror(errno));
        goto fail;
    }
    if (take_lock(r, err, errsize) != 0)
        goto fail;
    stop_stale(r->dir);
    unlink(sock);

    r->pid = spawn(server, r->dir, sock);
    if (r->pid < 0) {
        snprintf(err, errsize, "cannot start redis-server: fork: %s",
                 strerror(errno));
        goto fail;
    }
    deadline = hq__mono_ms() + timeout_ms;
    for (int64_t next_report = hq__mono_ms() + 500;;) {
        int ping = hk_embedded_redis_ping(sock, 1000);
        pid_t w;

        if (ping == 1)
            break;
        if (ping == 0 && hq__mono_ms() >= next_report) {
            log_loading(sock);
            next_report = hq__mono_ms() + 1000;
        }
        w = waitpid(r->pid, &status, WNOHANG);
        if (w == r->pid) {
            log_tail(r->dir, tail, sizeof(tail));
            if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                snprintf(err, errsize, "cannot run '%s'", server);
            else
                snprintf(err, errsize,
                         "redis-server exited at start (status "
                         "%d)%s",
                         WIFEXITED(status) ? WEXITSTATUS(status)
                                           : 128 + WTERMSIG(status),
                         tail);
            r->pid = -1;
            goto fail;
        }
        /* -LOADING: a big AOF is being read; that is progress. */
        if (ping != 0 && hq__mono_ms() > deadline) {
            snprintf(err, errsize,
                     "redis-server (pid %d) did not answer PING "
                     "on '%s' within %d ms",
                     (int)r->pid, sock, timeout_ms);
            goto fail;
        }
        hq__sleep_ms(10);
    }
    *out = r;
    return 0;
fail:
    hk_embedded_redis_stop(r, 5000);
    return -1;
}

const char *
hk_embedded_redis_url(const struct hk_embedded_redis *r)
{
    return r->url;
}

pid_t
hk_embedded_redis_pid(const struct hk_embedded_redis *r)
{
    return r->pid;
}

int
hk_embedded_redis_alive(struct hk_embedded_redis *r)
{
    int status;

    if (r->pid <= 0)
        return 0;
    if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
        r->pid = -1;
        return 0;
    }
    return 1;
}

int
hk_embedded_redis_stop(struct hk_embedded_redis *r, int timeout_ms)
{
    int rc = 0;

    if (r == NULL)
        return 0;
    if (r->pid > 0) {
        int64_t deadline = hq__mono_ms() + timeout_ms;
        int status;
        pid_t w;

        kill(r->pid, SIGTERM);
        for (;;) {
            w = waitpid(r->pid, &status, WNOHANG);
            if (w == r->pid || (w < 0 && errno != EINTR))
                break;
            if (hq__mono_ms() > deadline) {
                kill(r->pid, SIGKILL);
                while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR)
                    ;
                rc = -1;
                break;
            }
            hq__sleep_ms(5);
        }
    }
    if (r->lock_fd >= 0)
        close(r->lock_fd); /* releases the flock */
    free(r);
    return rc;
}
