/*
 * Internals of the worker runtime that need no Redis, shared with the unit
 * tests: the retry backoff. (Job records are read by hq__record_parse() of
 * record_int.h.)
 */
#ifndef HQ_WORKER_INT_H
#define HQ_WORKER_INT_H

#include <stddef.h>
#include <stdint.h>

/*
 * The delay before attempt `attempt` + 1, after attempt `attempt` failed:
 * full jitter, min + rnd % (hi - min + 1) with hi = min(max, min *
 * 2^(attempt-1)). `rnd` is a uniform random number. Never overflows.
 */
int64_t hq__backoff_ms(int attempt, int64_t min_ms, int64_t max_ms,
                       uint64_t rnd);

#endif /* HQ_WORKER_INT_H */
