/*
 * The intake server (see intake.h). Placeholder until the server lands:
 * hq_intake_start() fails, so callers can be wired and linked already.
 */
#include <stdio.h>
#include <string.h>

#include "intake.h"

struct hq_intake {
    int unused;
};

struct hq_intake *
hq_intake_start(const struct hq_config *cfg,
                const struct hq_store_options *store,
                const struct hq_intake_hooks *hooks, char *err, size_t errsize)
{
    (void)cfg;
    (void)store;
    (void)hooks;
    snprintf(err, errsize, "intake is not implemented yet");
    return NULL;
}

int
hq_intake_port(const struct hq_intake *in)
{
    (void)in;
    return 0;
}

void
hq_intake_stop(struct hq_intake *in)
{
    (void)in;
}

void
hq_intake_free(struct hq_intake *in)
{
    (void)in;
}

void
hq_intake_stats(const struct hq_intake *in, struct hq_intake_stats *out)
{
    (void)in;
    memset(out, 0, sizeof(*out));
}

const char *
hq_intake_reason_name(int reason)
{
    (void)reason;
    return "unknown";
}
