/*
 * The client handle, shared by client.c (push) and admin.c (operations).
 */
#ifndef HQ_CLIENT_INT_H
#define HQ_CLIENT_INT_H

#include "conn_int.h"

struct hq_client {
    struct hq__store_addr addr;
    struct hq__store_ns ns;
    struct hq__sconn conn; /* on addr and ns */
    struct hq__err err;
    hq_progress_fn *progress; /* optional, see hq_client_set_progress() */
    void *progress_arg;
};


#endif /* HQ_CLIENT_INT_H */
