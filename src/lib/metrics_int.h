/*
 * Latency histograms and the Prometheus text format for GET /metrics.
 *
 * A struct hq__hist is a fixed set of cumulative-style buckets (the bounds
 * are hq__hist_bounds_us[], in microseconds, from 0.5 ms to 1 h) kept as
 * relaxed atomics: the thread that observes never takes a lock, and a
 * scrape reads a snapshot that may be a few observations behind, which is
 * what Prometheus expects of a counter.
 *
 * The writer side (hq__prom_*) formats families and samples into a growing
 * buffer, in the text exposition format 0.0.4:
 *
 *     hq__prom_family(&p, "hookq_x_total", "counter", "What it counts.");
 *     hq__prom_sample(&p, "hookq_x_total", "reason=\"timeout\"", 3);
 *     hq__prom_hist(&p, "hookq_x_seconds", NULL, &snap);
 */
#ifndef HQ_METRICS_H
#define HQ_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "clock_int.h" /* hq__mono_us(): the clock durations are measured by */

/* Upper bounds of the finite buckets; the last bucket is +Inf. */
#define HQ_HIST_NBOUNDS 20
extern const int64_t hq__hist_bounds_us[HQ_HIST_NBOUNDS];

struct hq__hist {
    _Atomic uint64_t bucket[HQ_HIST_NBOUNDS + 1]; /* not cumulative */
    _Atomic uint64_t sum_us;
};

/* A plain copy, for adding several histograms up and for writing. */
struct hq__hist_snap {
    uint64_t bucket[HQ_HIST_NBOUNDS + 1];
    uint64_t sum_us;
};

/* Count one observation of `us` microseconds (negative counts as 0). */
void hq__hist_observe(struct hq__hist *h, int64_t us);

/* Add `h`'s counts into `snap` (zero it first for a plain copy). */
void hq__hist_add(struct hq__hist_snap *snap, const struct hq__hist *h);

/* A Prometheus text document being written; `buf` is NULL after an OOM. */
struct hq__prom {
    char *buf;
    size_t len, cap;
    int oom;
};

/* "# HELP" and "# TYPE" lines of a family. */
void hq__prom_family(struct hq__prom *p, const char *name, const char *type,
                    const char *help);
/* One sample; `labels` is `a="x",b="y"` or NULL. */
void hq__prom_sample(struct hq__prom *p, const char *name, const char *labels,
                    double value);
/* A histogram family's samples (_bucket, _sum, _count), in seconds. */
void hq__prom_hist(struct hq__prom *p, const char *name, const char *labels,
                  const struct hq__hist_snap *s);
/*
 * Quote `s` as a label value into `out` (size > 2): backslash, quote and
 * newline escaped, cut to fit. Returns `out`.
 */
const char *hq__prom_label(const char *s, char *out, size_t size);
/*
 * The standard process_* families of Prometheus's client libraries, read
 * from getrusage(), getrlimit() and /proc/self: CPU seconds, resident and
 * virtual memory, open and maximum file descriptors, start time. A value
 * that cannot be read is left out (its family stays, with no sample).
 */
void hq__prom_process(struct hq__prom *p);
/* Free the buffer. */
void hq__prom_release(struct hq__prom *p);

#endif /* HQ_METRICS_H */
