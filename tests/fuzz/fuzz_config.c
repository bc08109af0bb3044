/*
 * Fuzz target for the config loader (config.c): any bytes as the INI file.
 *
 * hq__config_load() reads only files, so the input is written to a memfd
 * and loaded through /proc/self/fd/N, with an empty environment (no
 * HOOKQ_* variable applies). It must never crash or leak, must write a
 * NUL-terminated error on failure, and on success every value it accepted
 * must be one the daemon's own parsers accept at startup: `hookq check`
 * saying "ok" promises that `hookq run` does not then refuse the file. So
 * each fetch line is parsed by hq__template_parse(), the customer by
 * hq__customer_spec_init(), the secrets (intake, [deliver], each event's)
 * by hq__sig_key_parse() and the redis url by hq__store_parse_url(), and a
 * refusal abort()s.
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

/* Values `hookq run` parses again from a config that loaded. */
static void
check_accepted(const struct hq__config *cfg)
{
    struct hq__err err;

    for (size_t i = 0; i < cfg->nevents; i++) {
        const struct hq__event_cfg *ev = &cfg->events[i];

        HQ_FUZZ_CHECK(hq__config_event(cfg, ev->code, strlen(ev->code)) != NULL,
                      "event '%s' not found by its code", ev->code);
        for (size_t f = 0; f < ev->nfetch; f++) {
            struct hq__template *t = NULL;
            int rc = hq__template_parse(ev->fetch[f], &t, &err);

            HQ_FUZZ_CHECK(rc == HQ_OK, "config accepts fetch '%s', the template "
                          "parser does not: %s", ev->fetch[f], err.msg);
            hq__template_free(t);
        }
        if (ev->secret != NULL) {
            struct hq__sig_key key;

            HQ_FUZZ_CHECK(hq__sig_key_parse(ev->secret, &key, &err) == HQ_OK,
                          "config accepts [event %s] secret, the worker does "
                          "not: %s", ev->code, err.msg);
        }
    }
    if (cfg->deliver.secret != NULL) {
        struct hq__sig_key key;

        HQ_FUZZ_CHECK(hq__sig_key_parse(cfg->deliver.secret, &key, &err) == HQ_OK,
                      "config accepts [deliver] secret, the worker does not: %s",
                      err.msg);
    }
    {
        struct hq__customer_spec spec;
        int rc = hq__customer_spec_init(&spec, cfg->intake.customer, &err);

        HQ_FUZZ_CHECK(rc == HQ_OK, "config accepts customer '%s', intake does "
                      "not: %s", cfg->intake.customer, err.msg);
        hq__customer_spec_release(&spec);
    }
    if (cfg->intake.secret != NULL && cfg->intake.secret[0] != '\0') {
        struct hq__sig_key key;

        HQ_FUZZ_CHECK(hq__sig_key_parse(cfg->intake.secret, &key, &err) == HQ_OK,
                      "config accepts the secret, intake does not: %s", err.msg);
    }
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
