/*
 * Time, and waiting on it: the library's one monotonic clock, a sleep, and
 * the one reconnect backoff policy with its source of jitter.
 *
 * DESIGN: every duration and deadline of the library is read from
 * CLOCK_MONOTONIC through hq__mono_ns() (the wall clock jumps; this one
 * does not), in the unit its caller counts in. A connection to Redis that
 * failed is tried again after hq__reconnect_backoff_ms(): the delay doubles
 * from HQ_RECONNECT_MIN_MS to HQ_RECONNECT_MAX_MS, and a random point of
 * its upper half is taken so that many connections that failed together
 * (a restarted Redis, a failed-over master) do not come back in step. The
 * async connections (conn.c) and a cluster router's nodes (router.c) use
 * it; a job's retry backoff (worker.c) and the limiter's waits are policy
 * of their own and only borrow the jitter source.
 */
#ifndef HQ_CLOCK_INT_H
#define HQ_CLOCK_INT_H

#include <stdint.h>

/* Nanoseconds on CLOCK_MONOTONIC. Cannot fail. */
int64_t hq__mono_ns(void);

/* The same clock in microseconds (durations, histograms) and milliseconds
 * (timeouts and deadlines). */
static inline int64_t
hq__mono_us(void)
{
    return hq__mono_ns() / 1000;
}

static inline int64_t
hq__mono_ms(void)
{
    return hq__mono_ns() / 1000000;
}

/* Sleep `ms` milliseconds whole, through signals (blocking waits only:
 * never on an event loop). */
void hq__sleep_ms(int ms);

#define HQ_RECONNECT_MIN_MS 50   /* first reconnect delay's ceiling */
#define HQ_RECONNECT_MAX_MS 1000 /* the delay doubles up to this */

/*
 * The delay before reconnect attempt number `attempt` (0 = the first, a
 * negative count as 0): HQ_RECONNECT_MIN_MS doubled per attempt up to
 * HQ_RECONNECT_MAX_MS, then a point in its upper half [d/2, d] chosen by
 * `rnd` (hq__rng_next()). The one reconnect policy.
 */
int hq__reconnect_backoff_ms(int attempt, uint64_t rnd);

/*
 * Jitter: a seed that differs between objects (`p`) and between runs, and
 * the next number of a xorshift64* sequence. Not for secrets. `*state`
 * must not be 0 (hq__rng_seed() never is).
 */
uint64_t hq__rng_seed(const void *p);
uint64_t hq__rng_next(uint64_t *state);

#endif /* HQ_CLOCK_INT_H */
