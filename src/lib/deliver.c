/*
 * Delivery targets: http, exec and log (see deliver_int.h).
 *
 * DESIGN: http goes through the loop's hq__http (libcurl multi on the
 * loop). exec runs its child through child.c (its own process group, the
 * payload fed to its stdin and its stdout+stderr read on the loop, reaped
 * without blocking, the group killed on timeout); the tail of its output
 * is kept for the error message, and a timeout is retried.
 * log writes each line with one write(2) on an O_APPEND descriptor, so
 * lines of concurrent loops and processes never interleave.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "child_int.h"
#include "curl_event_int.h"
#include "deliver_int.h"

enum target { TARGET_HTTP, TARGET_EXEC, TARGET_LOG };

struct hq__deliver {
    int target;        /* enum target */
    char *url;         /* TARGET_HTTP */
    char **argv;       /* TARGET_EXEC, NULL-terminated */
    const char *path;  /* TARGET_LOG: the FILE of log:FILE (in spec); NULL = stdout */
    char *spec;
};

#define TAIL_MAX 512

struct hq__delivery {
    const struct hq__deliver *d;
    hq__deliver_fn *fn;
    void *arg;
    struct hq__http_call *http;  /* TARGET_HTTP */
    /* TARGET_EXEC */
    struct hq__child *child;
    char tail[TAIL_MAX];         /* last bytes of the child's output */
    size_t tail_len;
    int64_t timeout_ms;
};

int
hq__url_origin(const char *url, char *buf, size_t size)
{
    const char *s, *host, *end, *at, *port = NULL;
    size_t hostlen, schemelen, n;
    int https;

    if (strncasecmp(url, "http://", 7) == 0)
        https = 0, schemelen = 4;
    else if (strncasecmp(url, "https://", 8) == 0)
        https = 1, schemelen = 5;
    else
        return HQ_EINVAL;
    s = url + schemelen + 3;
    end = s + strcspn(s, "/?#");
    at = memchr(s, '@', (size_t)(end - s));
    host = at ? at + 1 : s;
    if (*host == '[') {
        const char *rb = memchr(host, ']', (size_t)(end - host));

        if (!rb)
            return HQ_EINVAL;
        hostlen = (size_t)(rb + 1 - host);
        if (rb + 1 < end && rb[1] == ':')
            port = rb + 2;
    } else {
        const char *colon = memchr(host, ':', (size_t)(end - host));

        hostlen = (size_t)((colon ? colon : end) - host);
        if (colon)
            port = colon + 1;
    }
    if (hostlen == 0)
        return HQ_EINVAL;
    n = (size_t)snprintf(buf, size, "%s://", https ? "https" : "http");
    if (n + hostlen + 8 > size)
        return HQ_EINVAL;
    for (size_t i = 0; i < hostlen; i++)
        buf[n++] = (char)tolower((unsigned char)host[i]);
    if (port && port < end)
        n += (size_t)snprintf(buf + n, size - n, ":%.*s",
                              (int)(end - port > 6 ? 6 : end - port), port);
    else
        n += (size_t)snprintf(buf + n, size - n, ":%d", https ? 443 : 80);
    return n < size ? HQ_OK : HQ_EINVAL;
}

int
hq__deliver_target(const struct hq__deliver *d, char *buf, size_t size)
{
    int n;

    if (d->target == TARGET_HTTP)
        return hq__url_origin(d->url, buf, size) == HQ_OK;
    if (d->target == TARGET_EXEC) {
        n = snprintf(buf, size, "exec:%s", d->argv[0]);
        return n > 0 && (size_t)n < size;
    }
    return 0;
}

int
hq__deliver_http_outcome(int status)
{
    if (status >= 200 && status < 300)
        return HQ_OUTCOME_DONE;
    if (status >= 400 && status < 500 && status != 408 && status != 429)
        return HQ_OUTCOME_FAIL;
    return HQ_OUTCOME_RETRY;
}

void
hq__deliver_free(struct hq__deliver *d)
{
    if (!d)
        return;
    for (size_t i = 0; d->argv && d->argv[i]; i++)
        free(d->argv[i]);
    free(d->argv);
    free(d->url);
    free(d->spec);
    free(d);
}

static int
split_args(struct hq__deliver *d, const char *s, struct hq__err *err)
{
    size_t n = 0;

    while (*s) {
        const char *e;
        char **na;

        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        for (e = s; *e && *e != ' ' && *e != '\t'; e++)
            ;
        na = realloc(d->argv, (n + 2) * sizeof(*na));
        if (!na)
            return hq__err_set(err, HQ_ENOMEM, "out of memory");
        d->argv = na;
        d->argv[n] = strndup(s, (size_t)(e - s));
        d->argv[n + 1] = NULL;
        if (!d->argv[n])
            return hq__err_set(err, HQ_ENOMEM, "out of memory");
        n++;
        s = e;
    }
    if (n == 0 || d->argv[0][0] != '/')
        return hq__err_set(err, HQ_EINVAL,
                           "exec needs an absolute path, as in "
                           "'exec:/usr/local/bin/handle'");
    return HQ_OK;
}

int
hq__deliver_parse(const char *spec, struct hq__deliver **out,
                  struct hq__err *err)
{
    struct hq__deliver *d;
    int rc = HQ_OK;

    *out = NULL;
    d = calloc(1, sizeof(*d));
    if (!d || !(d->spec = strdup(spec))) {
        free(d);
        return hq__err_set(err, HQ_ENOMEM, "out of memory");
    }
    if (strncmp(spec, "http://", 7) == 0 || strncmp(spec, "https://", 8) == 0) {
        d->target = TARGET_HTTP;
        d->url = strdup(spec);
        if (!d->url)
            rc = hq__err_set(err, HQ_ENOMEM, "out of memory");
    } else if (strncmp(spec, "exec:", 5) == 0) {
        d->target = TARGET_EXEC;
        rc = split_args(d, spec + 5, err);
    } else if (strcmp(spec, "log") == 0) {
        d->target = TARGET_LOG;
    } else if (strncmp(spec, "log:", 4) == 0 && spec[4]) {
        d->target = TARGET_LOG;
        d->path = d->spec + 4;
    } else {
        rc = hq__err_set(err, HQ_EINVAL,
                         "unknown delivery '%s' (use http://..., "
                         "exec:/path or log[:FILE])", spec);
    }
    if (rc != HQ_OK) {
        hq__deliver_free(d);
        return rc;
    }
    *out = d;
    return HQ_OK;
}

int
hq__deliver_log_open(const struct hq__deliver *d, int *fd, struct hq__err *err)
{
    *fd = -1;
    if (d->target != TARGET_LOG)
        return HQ_OK;
    if (d->path == NULL) {
        *fd = 1;
        return HQ_OK;
    }
    *fd = open(d->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0)
        return hq__err_set(err, HQ_EIO, "cannot open '%s': %s", d->path,
                           strerror(errno));
    return HQ_OK;
}

/* ------------------------------------------------------------------------ */
/* http                                                                     */

/* Header values carry customer data: escape anything but visible ASCII. */
static void
header_value(char *buf, size_t size, const char *name, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = (size_t)snprintf(buf, size, "%s: ", name);

    for (; *v && n + 4 < size; v++) {
        unsigned char c = (unsigned char)*v;

        if (c <= 0x20 || c >= 0x7f || c == '%') {
            buf[n++] = '%';
            buf[n++] = hex[c >> 4];
            buf[n++] = hex[c & 15];
        } else {
            buf[n++] = (char)c;
        }
    }
    buf[n] = '\0';
}

static void
http_done(const struct hq__http_response *r, void *arg)
{
    struct hq__delivery *dl = arg;
    char msg[1024];
    int outcome, failed = 0;

    dl->http = NULL;
    if (r->failure != HQ_HTTP_OK) {
        snprintf(msg, sizeof(msg), "delivery to '%s' failed: %s", dl->d->url,
                 r->error);
        outcome = HQ_OUTCOME_RETRY;
        failed = 1;
    } else if (r->status >= 300 && r->status < 400) {
        /* Redirects are not followed: the target is misconfigured or has
         * moved, and the operator should say where (a retry, so that a
         * fixed target gets the job). */
        snprintf(msg, sizeof(msg),
                 "delivery to '%s' answered %d redirecting to '%s' "
                 "(redirects are not followed)",
                 dl->d->url, r->status,
                 r->location && *r->location ? r->location : "(no Location)");
        outcome = HQ_OUTCOME_RETRY;
    } else {
        outcome = hq__deliver_http_outcome(r->status);
        failed = r->status >= 500;
        snprintf(msg, sizeof(msg), "delivery to '%s' answered %d%s%.*s",
                 dl->d->url, r->status, r->body_len ? ": " : "",
                 (int)(r->body_len > 200 ? 200 : r->body_len), r->body);
    }
    dl->fn(outcome, failed, outcome == HQ_OUTCOME_DONE ? NULL : msg, dl->arg);
    free(dl);
}

static int
http_start(struct hq__delivery *dl, struct hq__http *http,
           const struct hq__delivery_job *job, struct hq__err *err)
{
    char h_id[160], h_key[600], h_seq[48], h_att[48];
    char w_id[160], w_ts[48], w_sig[64 + HQ_SIG_B64_LEN], ts[24];
    char sig[HQ_SIG_B64_LEN + 1];
    const char *headers[8];
    struct hq__http_request req;
    size_t nh = 0;

    header_value(h_id, sizeof(h_id), "Hookq-Id", job->id);
    header_value(h_key, sizeof(h_key), "Hookq-Key", job->key);
    snprintf(h_seq, sizeof(h_seq), "Hookq-Seq: %lld", (long long)job->seq);
    snprintf(h_att, sizeof(h_att), "Hookq-Attempt: %d", job->attempt);
    headers[nh++] = "Content-Type: application/json";
    headers[nh++] = h_id;
    headers[nh++] = h_key;
    headers[nh++] = h_seq;
    headers[nh++] = h_att;
    if (job->key_sig) {
        /* Standard Webhooks: the job id is the message id, the same on
         * every attempt, so the receiver can dedup on it. */
        snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
        if (hq__sig_sign(job->key_sig, job->id, strlen(job->id), ts,
                         strlen(ts), job->payload, job->payload_len,
                         sig) != HQ_OK)
            return hq__err_set(err, HQ_ENOMEM, "cannot sign the delivery");
        snprintf(w_id, sizeof(w_id), "webhook-id: %s", job->id);
        snprintf(w_ts, sizeof(w_ts), "webhook-timestamp: %s", ts);
        snprintf(w_sig, sizeof(w_sig), "webhook-signature: v1,%s", sig);
        headers[nh++] = w_id;
        headers[nh++] = w_ts;
        headers[nh++] = w_sig;
    }
    memset(&req, 0, sizeof(req));
    req.method = "POST";
    req.url = dl->d->url;
    req.headers = headers;
    req.nheaders = nh;
    req.body = job->payload;
    req.body_len = job->payload_len;
    req.timeout_ms = job->timeout_ms;
    req.max_response = 4096;
    return hq__http_send(http, &req, http_done, dl, &dl->http, err);
}

/* ------------------------------------------------------------------------ */
/* exec                                                                     */

/* The child's output tail, one line, for messages. */
static const char *
tail_text(struct hq__delivery *dl)
{
    size_t n = dl->tail_len;

    while (n && (dl->tail[n - 1] == '\n' || dl->tail[n - 1] == '\r'))
        n--;
    dl->tail[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (dl->tail[i] == '\n' || dl->tail[i] == '\r')
            dl->tail[i] = ' ';
    return dl->tail;
}

static void
exec_done(int status, int timed_out, void *arg)
{
    struct hq__delivery *dl = arg;
    char msg[TAIL_MAX + 256];
    const char *prog = dl->d->argv[0], *tail = tail_text(dl);
    const char *sep = *tail ? ": " : "";
    int outcome, failed = 0;

    if (timed_out) {
        outcome = HQ_OUTCOME_RETRY;
        failed = 1;
        snprintf(msg, sizeof(msg), "'%s' killed after %lld ms%s%s", prog,
                 (long long)dl->timeout_ms, sep, tail);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        outcome = HQ_OUTCOME_DONE;
        msg[0] = '\0';
    } else if (WIFEXITED(status)) {
        outcome = WEXITSTATUS(status) == 75 ? HQ_OUTCOME_RETRY
                                            : HQ_OUTCOME_FAIL;
        failed = WEXITSTATUS(status) == 75;
        snprintf(msg, sizeof(msg), "'%s' exited with %d%s%s", prog,
                 WEXITSTATUS(status), sep, tail);
    } else {
        outcome = HQ_OUTCOME_FAIL;
        snprintf(msg, sizeof(msg), "'%s' killed by signal %d%s%s", prog,
                 WTERMSIG(status), sep, tail);
    }
    dl->fn(outcome, failed, outcome == HQ_OUTCOME_DONE ? NULL : msg, dl->arg);
    free(dl);
}

/* Keep the last TAIL_MAX - 1 bytes of the child's output. */
static void
exec_output(const char *buf, size_t n, void *arg)
{
    struct hq__delivery *dl = arg;

    if (n >= TAIL_MAX - 1) {
        memcpy(dl->tail, buf + n - (TAIL_MAX - 1), TAIL_MAX - 1);
        dl->tail_len = TAIL_MAX - 1;
    } else {
        size_t keep = TAIL_MAX - 1 - n;

        if (dl->tail_len > keep) {
            memmove(dl->tail, dl->tail + dl->tail_len - keep, keep);
            dl->tail_len = keep;
        }
        memcpy(dl->tail + dl->tail_len, buf, n);
        dl->tail_len += n;
    }
}

/* Run argv with the payload on stdin and HOOKQ_ID, HOOKQ_KEY, HOOKQ_SEQ,
 * HOOKQ_ATTEMPT in the environment. */
static int
exec_start(struct hq__delivery *dl, struct event_base *base,
           const struct hq__delivery_job *job, struct hq__err *err)
{
    char *vars[4] = {NULL, NULL, NULL, NULL};
    char **env = NULL;
    struct hq__child_spec spec;
    int rc, ok = 1;

    dl->timeout_ms = job->timeout_ms;
    if (asprintf(&vars[0], "HOOKQ_ID=%s", job->id) < 0)
        vars[0] = NULL;
    if (asprintf(&vars[1], "HOOKQ_KEY=%s", job->key) < 0)
        vars[1] = NULL;
    if (asprintf(&vars[2], "HOOKQ_SEQ=%lld", (long long)job->seq) < 0)
        vars[2] = NULL;
    if (asprintf(&vars[3], "HOOKQ_ATTEMPT=%d", job->attempt) < 0)
        vars[3] = NULL;
    for (int i = 0; i < 4; i++)
        ok = ok && vars[i];
    if (ok)
        env = hq__child_env(vars, 4);
    if (!env) {
        rc = hq__err_set(err, HQ_ENOMEM, "out of memory");
    } else {
        memset(&spec, 0, sizeof(spec));
        spec.argv = dl->d->argv;
        spec.env = env;
        spec.input = job->payload;
        spec.input_len = job->payload_len;
        spec.merge_stderr = 1;
        spec.timeout_ms = job->timeout_ms;
        rc = hq__child_start(base, &spec, exec_output, exec_done, dl,
                             &dl->child, err);
    }
    free(env);
    for (int i = 0; i < 4; i++)
        free(vars[i]);
    return rc;
}

/* ------------------------------------------------------------------------ */

static int
log_write(const struct hq__deliver *d, const struct hq__delivery_job *job,
          struct hq__err *err)
{
    struct iovec iov[2];
    size_t total = job->payload_len + 1, done = 0;

    iov[0].iov_base = (void *)job->payload;
    iov[0].iov_len = job->payload_len;
    iov[1].iov_base = "\n";
    iov[1].iov_len = 1;
    while (done < total) {
        ssize_t n = writev(job->log_fd, iov, 2);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hq__err_set(err, HQ_EIO, "cannot write to '%s': %s",
                               d->spec, strerror(errno));
        done += (size_t)n;
        /* Short write (pipes, full disks): go on after what was written. */
        for (int i = 0; i < 2 && n > 0; i++) {
            size_t k = (size_t)n < iov[i].iov_len ? (size_t)n : iov[i].iov_len;

            iov[i].iov_base = (char *)iov[i].iov_base + k;
            iov[i].iov_len -= k;
            n -= (ssize_t)k;
        }
    }
    return HQ_OK;
}

int
hq__deliver_start(const struct hq__deliver *d, struct event_base *base,
                  struct hq__http *http, const struct hq__delivery_job *job,
                  hq__deliver_fn *fn, void *arg, struct hq__delivery **call,
                  struct hq__err *err)
{
    struct hq__delivery *dl;
    int rc;

    *call = NULL;
    if (d->target == TARGET_LOG) {
        rc = log_write(d, job, err);
        if (rc == HQ_OK)
            fn(HQ_OUTCOME_DONE, 0, NULL, arg);
        else
            fn(HQ_OUTCOME_RETRY, 0, err->msg, arg);
        return HQ_OK;
    }
    dl = calloc(1, sizeof(*dl));
    if (!dl)
        return hq__err_set(err, HQ_ENOMEM, "out of memory");
    dl->d = d;
    dl->fn = fn;
    dl->arg = arg;
    if (d->target == TARGET_HTTP) {
        rc = http_start(dl, http, job, err);
        if (rc != HQ_OK) {
            free(dl);
            return rc;
        }
    } else {
        rc = exec_start(dl, base, job, err);
        if (rc != HQ_OK) {
            free(dl);
            return rc;
        }
    }
    *call = dl;
    return HQ_OK;
}

void
hq__deliver_cancel(struct hq__delivery *dl)
{
    if (!dl)
        return;
    if (dl->d->target == TARGET_HTTP) {
        hq__http_cancel(dl->http);
        free(dl);
        return;
    }
    hq__child_cancel(dl->child);
    free(dl);
}
