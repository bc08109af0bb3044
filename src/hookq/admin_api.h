/*
 * The admin listener's routes beyond /healthz (DESIGN §3.5):
 *
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
 *   GET  /api/throughput  accepted/processed/failed per second, 15 minutes
 *
 * docs/operations.md lists every metric and answer; docs/admin-api.yaml
 * describes the API in OpenAPI 3.0.
 */
#ifndef HQ_ADMIN_API_H
#define HQ_ADMIN_API_H

#include <stddef.h>

#include "admin_http.h"

struct hk_admin_api;

/*
 * Add the routes to `a` (before hk_admin_start()); `store` is copied. The
 * Redis connection is made when first needed. Returns NULL with the reason
 * in `err`.
 */
struct hk_admin_api *hk_admin_api_new(struct hk_admin *a,
                                      const struct hq_store_options *store,
                                      char *err, size_t errsize);
/* After the admin thread has stopped. NULL is accepted. */
void hk_admin_api_free(struct hk_admin_api *api);

#endif /* HQ_ADMIN_API_H */
