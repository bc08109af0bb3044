/*
 * The daemon's admin routes (DESIGN §3.5), on the admin listener:
 *
 *   GET  /healthz         200 {"status":"ok"} when Redis answers PING and
 *                         takes writes; 503 {"status":"unavailable",
 *                         "detail":...} when it does not answer;
 *                         {"status":"redis_oom","detail":...} when it is over
 *                         its maxmemory, with 503 in a process that runs an
 *                         intake (it refuses every webhook) and 200 in one
 *                         that only works (it drains, which frees memory)
 *   GET  /                the dashboard (a static page; needs no token)
 *   GET  /metrics         Prometheus text: this process's intake, worker and
 *                         API counters and histograms, and every shard's
 *                         gauges and counters from Redis
 *   GET  /api/stats       `hookq stats --json` (?top=N, default 20)
 *   GET  /api/keys        `hookq keys --json` (?state=ready|active|parked|held,
 *                         ?top=N, ?q=TEXT, ?offset=M)
 *   GET  /api/keys/KEY    the key and its first payloads, `hookq peek` (?n=N)
 *   GET  /api/dlq         `hookq dlq list --json` (?limit=N, default 100)
 *   GET  /api/dlq/ID      `hookq dlq show ID --json`
 *   POST /api/dlq/retry   {"id": ID} or {"all": true}
 *   POST /api/dlq/drop    {"id": ID} or {"all": true}
 *   POST /api/hold        {"key": KEY[, "reason": TEXT]}
 *   POST /api/release     {"key": KEY} or {"customer": CUSTOMER}
 *   GET  /api/workers     `hookq workers --json`
 *   GET  /api/throughput  accepted/processed/failed per second, 15 minutes
 *
 * docs/operations.md lists every metric and answer; docs/admin-api.yaml
 * describes the API in OpenAPI 3.0.
 */
#ifndef HQ_ADMIN_API_H
#define HQ_ADMIN_API_H

#include <stddef.h>

#include "admin_http.h"

struct hk_intake;
struct hq__process;

/*
 * Register the routes and the throughput tick on `a` (before
 * hk_admin_start()); hk_admin_free() frees what they use. `cfg` is
 * borrowed and outlives `a`; `store` is copied, and `addr`, the same Redis
 * parsed (config.c's, or the embedded Redis's). `intake`, `worker` and
 * `process` (the worker's handler) are what this process runs, each
 * possibly NULL: /metrics shows their counters, /healthz the intake's last
 * answer from Redis; they outlive `a`'s thread. The Redis connections are
 * made when first needed. Returns 0, or -1 with the reason in `err`.
 */
int hk_admin_api_attach(struct hk_admin *a, const struct hq__config *cfg,
                        const struct hq_store_options *store,
                        const struct hq__store_addr *addr,
                        struct hk_intake *intake, hq_worker *worker,
                        struct hq__process *process, char *err,
                        size_t errsize);

#endif /* HQ_ADMIN_API_H */
