/*
 * The client handle, shared by client.c (push) and admin.c (operations).
 */
#ifndef HQ_CLIENT_INT_H
#define HQ_CLIENT_INT_H

#include "store_int.h"

struct hq_client {
    struct hq__store_addr addr;
    struct hq__store_ns ns;
    redisContext *rc;   /* NULL or broken: reconnected on next use */
    struct hq__err err;
    hq_progress_fn *progress; /* optional, see hq_client_set_progress() */
    void *progress_arg;
};

/* (Re)connect; HQ_OK or HQ_ESTORE with the detail in c->err. */
int hq__client_reconnect(hq_client *c);
/* The live connection, reconnecting a broken one; NULL when Redis is down. */
redisContext *hq__client_conn(hq_client *c);
/* The key prefix of the customer's shard. */
size_t hq__client_prefix_for(hq_client *c, const char *customer, size_t len,
                             char *buf, size_t size);

#endif /* HQ_CLIENT_INT_H */
