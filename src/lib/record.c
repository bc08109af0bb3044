/*
 * Job records (see record_int.h): the one reader of the format that
 * enqueue.lua writes, for the worker (its claimed jobs) and the admin
 * commands (peek, dead letters).
 */
#include <string.h>

#include "record_int.h"

int
hq__record_parse(const char *rec, size_t len, struct hq__record *out)
{
    const char *f[4];
    size_t flen[4];
    const char *p = rec, *end = rec + len;

    for (int i = 0; i < 4; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));

        if (nl == NULL)
            return HQ_EPROTO;
        f[i] = p;
        flen[i] = (size_t)(nl - p);
        p = nl + 1;
    }
    memset(out, 0, sizeof(*out));
    if (flen[0] == 0 || hq__parse_i64(f[1], flen[1], &out->seq) != HQ_OK ||
        hq__parse_i64(f[2], flen[2], &out->received_at_ms) != HQ_OK)
        return HQ_EPROTO;
    out->id = f[0];
    out->id_len = flen[0];
    out->webhook_id = f[3];
    out->webhook_id_len = flen[3];
    out->body = p;
    out->body_len = (size_t)(end - p);
    return HQ_OK;
}
