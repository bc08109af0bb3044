/*
 * The service manager's readiness protocol (sd_notify(3)), for `hookq run`,
 * `serve` and `work` under systemd's Type=notify. Without $NOTIFY_SOCKET
 * (not started by systemd) every call does nothing.
 */
#ifndef HQ_NOTIFY_H
#define HQ_NOTIFY_H

#include <stdint.h>

/* READY=1 with a STATUS= line: listening, and Redis answers. */
void hk_notify_ready(const char *status);

/* STATUS=<status> alone: what the daemon is waiting for. */
void hk_notify_status(const char *status);

/* STOPPING=1: the drain has begun. */
void hk_notify_stopping(void);

/*
 * The interval at which hk_notify_watchdog() must be called (half of the
 * unit's WatchdogSec=), in milliseconds; 0 when no watchdog is asked for.
 */
int64_t hk_notify_watchdog_interval_ms(void);

/* WATCHDOG=1: the daemon's main loop is alive. */
void hk_notify_watchdog(void);

#endif /* HQ_NOTIFY_H */
