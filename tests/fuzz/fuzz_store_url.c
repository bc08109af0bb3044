/*
 * Fuzz target for the redis url parser (hq__store_parse_url, store.c): any
 * text as `[redis] url`.
 *
 * Beyond never crashing: an accepted url names either a host (TCP, port
 * 1..65535) or an absolute unix socket path, never both; the database is in
 * 0..2^20; every field is NUL-terminated inside its array. A refused url
 * always says why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "store_int.h"

#define TERMINATED(a) (memchr((a), '\0', sizeof(a)) != NULL)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hq__store_addr addr;
    struct hq__err err;
    char *url;
    int rc;

    if (memchr(data, '\0', size) != NULL)
        return 0; /* a config value never holds a NUL */
    url = malloc(size + 1);
    if (url == NULL)
        abort();
    memcpy(url, data, size);
    url[size] = '\0';
    err.msg[0] = '\0';
    rc = hq__store_parse_url(url, 0, &addr, &err);
    if (rc == HQ_OK) {
        HQ_FUZZ_CHECK(TERMINATED(addr.host) && TERMINATED(addr.unix_path) &&
                          TERMINATED(addr.password),
                      "a field of '%s' is not terminated", url);
        HQ_FUZZ_CHECK((addr.host[0] != '\0') != (addr.unix_path[0] != '\0'),
                      "'%s': host '%s', unix path '%s'", url, addr.host, addr.unix_path);
        HQ_FUZZ_CHECK(addr.unix_path[0] == '\0' || addr.unix_path[0] == '/',
                      "'%s': relative unix path", url);
        HQ_FUZZ_CHECK(addr.port >= 1 && addr.port <= 65535, "'%s': port %d", url, addr.port);
        HQ_FUZZ_CHECK(addr.db >= 0 && addr.db <= 1 << 20, "'%s': db %d", url, addr.db);
        HQ_FUZZ_CHECK(addr.timeout_ms > 0, "'%s': timeout %d", url, addr.timeout_ms);
    } else {
        HQ_FUZZ_CHECK(rc == HQ_EINVAL && err.msg[0] != '\0', "'%s': %d", url, rc);
    }
    free(url);
    return 0;
}
