/*
 * Error codes and their names, and the per-handle detail strings.
 */
#include <stdio.h>

#include "common_int.h"

const char *
hq_strerror(int rc)
{
    switch (rc) {
    case HQ_OK: return "success";
    case HQ_EINVAL: return "invalid argument";
    case HQ_ENOMEM: return "out of memory";
    case HQ_ESTORE: return "redis unavailable or failed";
    case HQ_EFULL: return "key is full";
    case HQ_ESTALE: return "lease lost";
    case HQ_ENOTFOUND: return "not found";
    case HQ_ECONFIG: return "invalid configuration";
    case HQ_EPROTO: return "unexpected reply from redis";
    case HQ_EIO: return "i/o error";
    }
    return "unknown error";
}

const char *
hq_version(void)
{
    return HQ_VERSION;
}

int
hq__err_set(struct hq__err *e, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return rc;
}

void
hq__logf(hq_log_fn *fn, void *arg, int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (fn == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fn(level, msg, arg);
}
