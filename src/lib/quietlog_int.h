/*
 * Rate-limited logging of Redis failures, per shard or per node.
 *
 * DESIGN: while a shard has no master (a cluster failover, a Sentinel
 * master gone), every retry of every call for it fails, and each loop
 * would log each one. A quietlog keeps, per subject ("shard 3", or the
 * text of a node's failure), when it last let a line through and how many
 * failures it kept quiet since: the first failure is logged at once, then
 * at most one line per subject per HQ_QUIETLOG_EVERY_MS, which says how
 * many were not logged. A subject marked `back` (a shard, whose calls can
 * succeed again) is remembered until hq__quietlog_ok() sees its next
 * success, which is reported once: how long it failed and how many calls
 * failed meanwhile ("shard 3 back after 4.2 s, 118 calls retried").
 *
 * One quietlog is shared by the loops of a worker (or of an intake): a
 * mutex guards the table. The success path, taken by every answered call,
 * looks at one atomic counter first and takes the lock only while some
 * subject is failing. The clock is the caller's (monotonic ms), so the
 * unit test can drive it.
 */
#ifndef HQ_QUIETLOG_INT_H
#define HQ_QUIETLOG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define HQ_QUIETLOG_EVERY_MS 5000 /* at most one line per subject this often */
#define HQ_QUIETLOG_SUBJECTS 64   /* subjects remembered at once */
#define HQ_QUIETLOG_SUBJECT_MAX 160 /* bytes of a subject, NUL included */

struct hq__quietlog_entry {
    char subject[HQ_QUIETLOG_SUBJECT_MAX]; /* "" = a free entry */
    int back;                  /* reported by hq__quietlog_ok(); counted in nback */
    int64_t first_ms;          /* the first failure since the last success */
    int64_t line_ms;           /* the last line let through */
    int64_t seen_ms;           /* the last failure */
    unsigned long quiet;       /* failures not logged since line_ms */
    unsigned long failures;    /* failures since first_ms */
};

struct hq__quietlog {
    pthread_mutex_t mu;        /* guards `e` */
    int ready;                 /* `mu` is initialised */
    _Atomic unsigned nback;    /* entries with `back` set: the fast path */
    struct hq__quietlog_entry e[HQ_QUIETLOG_SUBJECTS];
};

/* Set up an empty table. Returns HQ_OK or HQ_ENOMEM. */
int hq__quietlog_init(struct hq__quietlog *q);
/* Tear it down. Accepts a zeroed struct that was never initialised. */
void hq__quietlog_release(struct hq__quietlog *q);

/*
 * A failure of `subject` at `now_ms`. Returns 1 when the caller is to log
 * it now, with `*quiet` the failures of that subject not logged since its
 * last line (0 for the first); 0 when it is to stay quiet (it is counted).
 * `back`: the subject is a shard whose recovery hq__quietlog_ok() reports.
 * When the table is full of failing shards, every failure is logged.
 */
int hq__quietlog_fail(struct hq__quietlog *q, const char *subject, int back,
                      int64_t now_ms, unsigned long *quiet);

/* 1 while some `back` subject has failed and not answered since. */
static inline int
hq__quietlog_failing(struct hq__quietlog *q)
{
    return atomic_load_explicit(&q->nback, memory_order_relaxed) != 0;
}

/*
 * `subject` answered at `now_ms`. Returns 1 once after a run of failures,
 * with how long since the first (`*down_ms`) and how many calls failed
 * (`*failures`), and forgets the subject; 0 otherwise.
 */
int hq__quietlog_ok(struct hq__quietlog *q, const char *subject, int64_t now_ms,
                    int64_t *down_ms, unsigned long *failures);

#endif /* HQ_QUIETLOG_INT_H */
