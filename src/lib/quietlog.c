/*
 * Rate-limited logging of Redis failures (see quietlog_int.h).
 *
 * DESIGN: a small table searched linearly (a few shards and nodes fail at
 * once, not hundreds). A subject that is not a shard (`back` unset) is
 * never cleared by a success: its entry is reused once the table is full,
 * the one quiet for longest first; a failing shard's entry is never taken.
 */
#include <stdio.h>
#include <string.h>

#include "common_int.h"
#include "quietlog_int.h"

int
hq__quietlog_init(struct hq__quietlog *q)
{
    memset(q->e, 0, sizeof(q->e));
    atomic_store_explicit(&q->nback, 0, memory_order_relaxed);
    if (pthread_mutex_init(&q->mu, NULL) != 0)
        return HQ_ENOMEM;
    q->ready = 1;
    return HQ_OK;
}

void
hq__quietlog_release(struct hq__quietlog *q)
{
    if (q->ready)
        pthread_mutex_destroy(&q->mu);
    q->ready = 0;
}

static struct hq__quietlog_entry *
find(struct hq__quietlog *q, const char *subject)
{
    for (unsigned i = 0; i < HQ_QUIETLOG_SUBJECTS; i++)
        if (q->e[i].subject[0] && strcmp(q->e[i].subject, subject) == 0)
            return &q->e[i];
    return NULL;
}

/* A free entry, else the one not a failing shard quiet for longest. */
static struct hq__quietlog_entry *
take(struct hq__quietlog *q)
{
    struct hq__quietlog_entry *best = NULL;

    for (unsigned i = 0; i < HQ_QUIETLOG_SUBJECTS; i++) {
        struct hq__quietlog_entry *e = &q->e[i];
        if (e->subject[0] == '\0')
            return e;
        if (!e->back && (best == NULL || e->seen_ms < best->seen_ms))
            best = e;
    }
    return best;
}

int
hq__quietlog_fail(struct hq__quietlog *q, const char *subject, int back,
                  int64_t now_ms, unsigned long *quiet)
{
    struct hq__quietlog_entry *e;
    int log = 0;

    *quiet = 0;
    pthread_mutex_lock(&q->mu);
    e = find(q, subject);
    if (e == NULL) {
        e = take(q);
        if (e == NULL) {
            pthread_mutex_unlock(&q->mu);
            return 1; /* full of failing shards: say everything */
        }
        memset(e, 0, sizeof(*e));
        snprintf(e->subject, sizeof(e->subject), "%s", subject);
        e->first_ms = now_ms;
        e->line_ms = now_ms;
        log = 1;
    } else if (now_ms - e->line_ms >= HQ_QUIETLOG_EVERY_MS) {
        *quiet = e->quiet;
        e->quiet = 0;
        e->line_ms = now_ms;
        log = 1;
    } else {
        e->quiet++;
    }
    if (back && !e->back) {
        e->back = 1;
        atomic_fetch_add_explicit(&q->nback, 1, memory_order_relaxed);
    }
    e->failures++;
    e->seen_ms = now_ms;
    pthread_mutex_unlock(&q->mu);
    return log;
}

int
hq__quietlog_ok(struct hq__quietlog *q, const char *subject, int64_t now_ms,
                int64_t *down_ms, unsigned long *failures)
{
    struct hq__quietlog_entry *e;
    int was = 0;

    if (!hq__quietlog_failing(q))
        return 0;
    pthread_mutex_lock(&q->mu);
    e = find(q, subject);
    if (e != NULL && e->back) {
        *down_ms = now_ms - e->first_ms;
        *failures = e->failures;
        atomic_fetch_sub_explicit(&q->nback, 1, memory_order_relaxed);
        memset(e, 0, sizeof(*e));
        was = 1;
    }
    pthread_mutex_unlock(&q->mu);
    return was;
}
