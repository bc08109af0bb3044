/*
 * The admin routes an application calls (DESIGN §3.5 ★):
 *
 *   PUT    /api/tokens/CUSTOMER  {"token": "..."}  -> 204, as `hookq token set`
 *   DELETE /api/tokens/CUSTOMER                   -> 204, as `hookq token del`
 *          (both 403 {"error":"admin_token_required"} while [admin] token
 *          is unset: token writes are never open)
 *   POST   /api/limit  {"customer": C | "token": T, "endpoint": "GET /posts/{}",
 *                       "wait_ms": 0..10000}
 *          -> 200 {"granted":true}: one call counted against the (token,
 *             endpoint) budget of hookq's fetches; make it now;
 *          -> 429 {"granted":false,"retry_after_ms":N} + Retry-After, after
 *             waiting up to wait_ms on the admin loop's timers (no thread
 *             waits).
 *
 * Bad input is a 4xx with {"error", "detail"} naming what is wrong, and
 * nothing is stored. docs/operations.md and docs/admin-api.yaml describe
 * every answer.
 */
#ifndef HQ_ADMIN_APP_H
#define HQ_ADMIN_APP_H

#include <stddef.h>

#include "admin_http.h"

/*
 * Register the routes on `a` (before hk_admin_start()); hk_admin_free()
 * answers nothing more to the requests still waiting and frees them.
 * `cfg` is borrowed and outlives `a`; `store` is copied. Returns 0, or -1
 * with the reason in `err`.
 */
int hk_admin_app_attach(struct hk_admin *a, const struct hq__config *cfg,
                        const struct hq_store_options *store, char *err,
                        size_t errsize);

#endif /* HQ_ADMIN_APP_H */
