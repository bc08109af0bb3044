/*
 * Fuzz target for the config loader (config.c): any bytes as the INI file.
 *
 * hq__config_load() reads only files, so the input is written to a memfd
 * and loaded through /proc/self/fd/N, with an empty environment (no
 * HOOKQ_* variable applies). It must never crash or leak, must write a
 * NUL-terminated error on failure, and on success every value must be there
 * in its typed form, which is what the daemon reads at startup: `hookq
 * check` saying "ok" promises that `hookq run` does not then refuse the
 * file. The loader parses each value once, so the fetch templates, the
 * customer's pointer and the secrets are checked as the loader left them;
 * the redis url, which also reaches the store as text (hq_store_options),
 * must be one the store's parser accepts. A refusal abort()s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config_int.h"
#include "envelope_int.h"
#include "fuzz.h"
#include "signature_int.h"
#include "store_int.h"
#include "template_int.h"

/* The typed values of a config that loaded. */
static void
check_accepted(const struct hq__config *cfg)
{
    struct hq__err err;

    for (size_t i = 0; i < cfg->nevents; i++) {
        const struct hq__event_cfg *ev = &cfg->events[i];

        HQ_FUZZ_CHECK(hq__config_event(cfg, ev->code, strlen(ev->code)) != NULL,
                      "event '%s' not found by its code", ev->code);
        HQ_FUZZ_CHECK(ev->deliver != NULL, "event '%s' without deliver",
                      ev->code);
        HQ_FUZZ_CHECK(ev->timeout_ms >= 1 && ev->on_failure >= 0,
                      "event '%s' without its [deliver]/[worker] defaults",
                      ev->code);
        for (size_t f = 0; f < ev->nfetch; f++)
            HQ_FUZZ_CHECK(ev->fetch[f] != NULL &&
                              hq__template_route(ev->fetch[f])[0] != '\0',
                          "event '%s': fetch %zu not parsed", ev->code, f);
        HQ_FUZZ_CHECK(ev->secret == NULL || ev->secret->len >= 1,
                      "[event %s] secret decoded to nothing", ev->code);
    }
    HQ_FUZZ_CHECK(cfg->deliver.secret == NULL || cfg->deliver.secret->len >= 1,
                  "[deliver] secret decoded to nothing");
    HQ_FUZZ_CHECK(cfg->intake.secret == NULL || cfg->intake.secret->len >= 1,
                  "[intake] secret decoded to nothing");
    HQ_FUZZ_CHECK(cfg->intake.customer.name != NULL, "customer not parsed");
    HQ_FUZZ_CHECK(cfg->intake.listen.text != NULL &&
                      cfg->intake.listen.port >= 0 &&
                      cfg->intake.listen.port <= 65535,
                  "[intake] listen not parsed");
    if (cfg->redis.url != NULL) {
        struct hq__store_addr addr;

        HQ_FUZZ_CHECK(hq__store_parse_url(cfg->redis.url, 1000, &addr, &err) == HQ_OK,
                      "config accepts redis url '%s', the store does not: %s",
                      cfg->redis.url, err.msg);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *noenv[] = {NULL};
    static char errbuf[8192];
    struct hq__config *cfg = NULL;
    char path[64];
    int fd, rc;

    fd = memfd_create("hookq.ini", 0);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    if (size > 0 && write(fd, data, size) != (ssize_t)size) {
        perror("write");
        abort();
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    memset(errbuf, 'x', sizeof(errbuf));
    rc = hq__config_load(path, noenv, &cfg, errbuf, sizeof(errbuf));
    close(fd);

    HQ_FUZZ_CHECK(memchr(errbuf, '\0', sizeof(errbuf)) != NULL,
                  "the error text is not NUL-terminated");
    if (rc == HQ_OK) {
        HQ_FUZZ_CHECK(cfg != NULL, "ok without a config");
        check_accepted(cfg);
        hq__config_free(cfg);
    } else {
        HQ_FUZZ_CHECK(cfg == NULL, "a failed load returned a config");
        HQ_FUZZ_CHECK(rc == HQ_ECONFIG, "load failed with %d: %s", rc, errbuf);
        HQ_FUZZ_CHECK(errbuf[0] != '\0', "a failed load says nothing");
    }
    return 0;
}
