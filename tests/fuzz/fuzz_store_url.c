/*
 * Fuzz target for the redis url parser (hq__store_parse_url, store.c): any
 * text as `[redis] url`.
 *
 * Beyond never crashing: an accepted url names either a host (TCP, port
 * 1..65535) or an absolute unix socket path, never both; the database is in
 * 0..2^20; every field is NUL-terminated inside its array; a TCP url has 1
 * to HQ_SEEDS_MAX seeds, the first being host:port, and several only with
 * database 0; a user comes with a password. A refused url always says why,
 * and never repeats a password.
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
        HQ_FUZZ_CHECK(TERMINATED(addr.user), "'%s': user not terminated", url);
        HQ_FUZZ_CHECK(addr.user[0] == '\0' || addr.password[0] != '\0',
                      "'%s': a user without a password", url);
        if (addr.unix_path[0] == '\0') {
            HQ_FUZZ_CHECK(addr.nseeds >= 1 && addr.nseeds <= HQ_SEEDS_MAX,
                          "'%s': %u seeds", url, addr.nseeds);
            HQ_FUZZ_CHECK(strcmp(addr.seeds[0].host, addr.host) == 0 &&
                              addr.seeds[0].port == addr.port,
                          "'%s': the first seed is not host:port", url);
            HQ_FUZZ_CHECK(addr.nseeds == 1 || addr.db == 0,
                          "'%s': several seeds with db %d", url, addr.db);
            for (unsigned i = 0; i < addr.nseeds; i++)
                HQ_FUZZ_CHECK(TERMINATED(addr.seeds[i].host) && addr.seeds[i].host[0] &&
                                  addr.seeds[i].port >= 1 && addr.seeds[i].port <= 65535,
                              "'%s': seed %u", url, i);
        }
    } else {
        HQ_FUZZ_CHECK(rc == HQ_EINVAL && err.msg[0] != '\0', "'%s': %d", url, rc);
        {
            /* The password of "redis://user:PASSWORD@..." never shows. */
            const char *at = strrchr(url, '@');
            const char *colon = strchr(url + (strncmp(url, "redis://", 8) ? 0 : 8), ':');
            if (strncmp(url, "redis://", 8) == 0 && at && colon && colon < at &&
                at - colon > 4 && memchr(colon + 1, '/', (size_t)(at - colon - 1)) == NULL) {
                char pw[64];
                size_t n = (size_t)(at - colon - 1) < sizeof(pw) - 1 ? (size_t)(at - colon - 1)
                                                                      : sizeof(pw) - 1;
                memcpy(pw, colon + 1, n);
                pw[n] = '\0';
                HQ_FUZZ_CHECK(strstr(at, pw) != NULL || strstr(err.msg, pw) == NULL, "'%s': message '%s' shows the password",
                              url, err.msg);
            }
        }
    }
    free(url);
    return 0;
}
