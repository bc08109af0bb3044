/*
 * The monotonic clock, sleeping, and the reconnect backoff policy (see
 * clock_int.h for the contract).
 *
 * DESIGN: one place reads the clock and one place says how long to wait
 * before connecting again, so that the intake, the worker, processing and
 * a cluster router's nodes all back off alike (issue 8: they used to count
 * 50 ms-1 s, 100 ms-5 s, or not at all). The jitter generator is
 * xorshift64*: fast, state in one word, good enough to spread retries.
 */
#include <errno.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "clock_int.h"
#include "common_int.h"

int64_t
hq__mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
hq__sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int
hq__reconnect_backoff_ms(int attempt, uint64_t rnd)
{
    int ms = HQ_RECONNECT_MIN_MS;

    while (attempt-- > 0 && ms < HQ_RECONNECT_MAX_MS)
        ms *= 2;
    if (ms > HQ_RECONNECT_MAX_MS)
        ms = HQ_RECONNECT_MAX_MS;
    return ms / 2 + (int)(rnd % (uint64_t)(ms / 2 + 1));
}

uint64_t
hq__rng_seed(const void *p)
{
    uint64_t s = ((uint64_t)(uintptr_t)p << 16) ^ (uint64_t)hq__mono_ns() ^
                 ((uint64_t)getpid() << 40) ^ 0x9e3779b97f4a7c15ull;

    return s ? s : 0x9e3779b97f4a7c15ull;
}

uint64_t
hq__rng_next(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 2685821657736338717ull;
}
