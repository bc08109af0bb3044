/*
 * A job record as stored in a key's list, and its reader. The format is
 * written by scripts/enqueue.lua and described in docs/queue-semantics.md;
 * this is the one place in C that reads it (the worker's claimed jobs, the
 * admin's peek and dead letters), and it needs no Redis.
 */
#ifndef HQ_RECORD_INT_H
#define HQ_RECORD_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common_int.h"

/*
 * A job record as stored in a key's list (docs/queue-semantics.md):
 * "id \n seq \n received_at_ms \n webhook_id \n body". Pointers borrow the
 * record's bytes; the body is last and may contain newlines.
 */
struct hq__record {
    const char *id;
    size_t id_len;
    int64_t seq;
    int64_t received_at_ms;
    const char *webhook_id;
    size_t webhook_id_len;
    const char *body;
    size_t body_len;
};

/* Split a record. HQ_EPROTO when a field is missing or a number is bad. */
int hq__record_parse(const char *rec, size_t len, struct hq__record *out);

#endif /* HQ_RECORD_INT_H */
