/*
 * The asynchronous batched pusher: enqueue calls on an event loop, for many
 * requesters at once (the intake's requests).
 *
 * DESIGN: requests complete in one pass of the loop are stored together.
 * The first push of a shard opens a batch for it and activates the
 * pusher's flush event, which runs after every other callback of that pass
 * and sends each open batch as one `enqueue` call (enqueue.c encodes it) on
 * the connection that serves its shard; a full batch (HQ_ENQUEUE_BATCH_MAX
 * jobs or HQ_ENQUEUE_BATCH_BYTES of bodies) goes at once. While calls to a
 * Redis server (a cluster master) are in flight, the open batches of its
 * shards wait for them to end and keep growing, then go together. Redis
 * then pays the script call's fixed cost once per batch, and a push waits
 * at most its own loop pass and the round trip of the flight ahead of it.
 * Each push is answered only from the
 * script's reply (a 2xx is a stored job: G5, G9, G10). With
 * wait_replicas, a `WAIT` follows the reply on the same connection, and
 * the answers go out only when enough replicas acknowledged the batch.
 *
 * A requester that stops waiting (its connection closed, its deadline
 * passed) cancels its slot; the reply then finds no one to answer. The
 * pusher, its batches and its callbacks belong to one loop thread.
 */
#ifndef HQ_PUSHER_INT_H
#define HQ_PUSHER_INT_H

#include "conn_int.h"
#include "enqueue_int.h"

struct hq__pusher;
struct hq__push_batch;

/* Where a push waits; kept by the requester, for hq__pusher_cancel(). */
struct hq__push_slot {
    struct hq__push_batch *batch; /* NULL: not waiting */
    unsigned idx;                 /* its place in the batch */
};

enum hq__push_outcome {
    HQ_PUSH_ANSWERED,       /* `res` is the script's answer for the job */
    HQ_PUSH_FAILED,         /* unreachable, lost, or an error: `detail` says
                               whether the job may be stored */
    HQ_PUSH_NOT_REPLICATED, /* stored on the master, too few replicas
                               acknowledged it in time: `detail` */
};

/*
 * What the pusher tells its owner, on the loop thread. `done` once per push
 * that was not cancelled, its slot already free; `res` and `detail` are
 * valid during the call only. `batch_done` (optional) after each batch's
 * pushes were answered, or after it was dropped. `warn` (optional) for a
 * failure worth logging, once per batch.
 */
struct hq__pusher_hooks {
    void (*done)(void *req, enum hq__push_outcome outcome,
                 const struct hq_push_result *res, const char *detail,
                 void *arg);
    void (*batch_done)(void *arg);
    void (*warn)(const char *msg, void *arg);
    void *arg;
};

struct hq__pusher_options {
    struct hq_push_limits limits;
    unsigned wait_replicas;  /* 0: no WAIT */
    int64_t wait_timeout_ms; /* for WAIT */
};

/*
 * A pusher on `base`, sending on `conn` (borrowed; it outlives the pusher,
 * and is released before it so that calls in flight end first) with the
 * shards of `ns` (borrowed). HQ_OK or HQ_ENOMEM.
 */
int hq__pusher_new(struct event_base *base, struct hq__conn *conn,
                   const struct hq__store_ns *ns,
                   const struct hq__pusher_options *opts,
                   const struct hq__pusher_hooks *hooks,
                   struct hq__pusher **out);

/*
 * Free the pusher. Open batches are dropped without an answer (their
 * requesters are gone); release the connection first, so that no batch is
 * still in flight. Accepts NULL.
 */
void hq__pusher_free(struct hq__pusher *p);

/*
 * Queue job `job` (checked by the caller; its strings borrowed until the
 * batch is sent, at the end of this loop pass or when the batch is full,
 * possibly before this returns) for `req`. On HQ_OK, `hooks.done(req, ...)`
 * is called exactly once unless the slot is cancelled first: later, or
 * from inside this call when the job filled its batch and sending it
 * failed at once. HQ_ESTORE: no connection serves the job's shard now;
 * HQ_ENOMEM. Then nothing was queued.
 */
int hq__pusher_add(struct hq__pusher *p, const struct hq_push *job,
                   void *req, struct hq__push_slot *slot);

/* The requester stops waiting: `done` will not be called for it. */
void hq__pusher_cancel(struct hq__push_slot *slot);

/* Batches open or in flight. */
unsigned hq__pusher_pending(const struct hq__pusher *p);

#endif /* HQ_PUSHER_INT_H */
