/*
 * Internals of the worker runtime: the retry backoff (shared with the unit
 * tests), and a job's lease for the library's own handler (process.c). (Job records are read by hq__record_parse() of
 * record_int.h.)
 */
#ifndef HQ_WORKER_INT_H
#define HQ_WORKER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "hookq/hookq.h"

/*
 * The delay before attempt `attempt` + 1, after attempt `attempt` failed:
 * full jitter, min + rnd % (hi - min + 1) with hi = min(max, min *
 * 2^(attempt-1)). `rnd` is a uniform random number. Never overflows.
 */
int64_t hq__backoff_ms(int attempt, int64_t min_ms, int64_t max_ms,
                       uint64_t rnd);

/*
 * The fencing token of the job's lease (decimal) and the shard it is in:
 * for a script that must check, in the same atomic step as its own work,
 * that the lease is still current (m:<key> st = active and tok = the
 * fence), as the rate limiter does. Not API: the lease is the library's.
 */
const char *hq__job_fence(const hq_job *job);
unsigned hq__job_shard(const hq_job *job);

#endif /* HQ_WORKER_INT_H */
