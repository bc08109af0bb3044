/*
 * sd_notify for the daemon (notify.h): the one file that includes
 * libsystemd. DESIGN §4: READY=1 once listening and Redis answers, STOPPING=1
 * when the drain begins, WATCHDOG=1 while the main loop runs when the unit
 * sets WatchdogSec=. sd_notify() does nothing without $NOTIFY_SOCKET, so a
 * daemon started by hand behaves as before. Errors are ignored: the service
 * manager not listening is no reason to stop serving.
 */
#include <stdio.h>

#include <systemd/sd-daemon.h>

#include "notify.h"

#include "banned_int.h"

void
hk_notify_ready(const char *status)
{
    (void)sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void
hk_notify_status(const char *status)
{
    (void)sd_notifyf(0, "STATUS=%s", status);
}

void
hk_notify_stopping(void)
{
    (void)sd_notify(0, "STOPPING=1\nSTATUS=draining");
}

int64_t
hk_notify_watchdog_interval_ms(void)
{
    uint64_t usec = 0;

    /* 0 = unset ($WATCHDOG_USEC absent, or meant for another pid). */
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return 0;
    /* sd_watchdog_enabled(3): ping at half the interval; at least 1 ms. */
    return usec / 2000 > 0 ? (int64_t)(usec / 2000) : 1;
}

void
hk_notify_watchdog(void)
{
    (void)sd_notify(0, "WATCHDOG=1");
}
