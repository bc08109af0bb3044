/*
 * Fuzz target for what the admin API and CLI take from an operator
 * (admin.c): job and dead-letter ids ("<shard>-<n>"), keys
 * ("customer:code"), and the job records they read back.
 *
 * Input: three parts split at the first two newlines: an id, a key, and
 * the rest as a job record (which may hold newlines).
 *
 * Checked against a plain reading of each format:
 * - hq__job_id_shard() accepts exactly "<digits>-<digits>" (each at most 18
 *   digits, so it fits an int64_t) with a shard below the count and n >= 1;
 * - hq__admin_check_key() accepts exactly a key with no newline whose last
 *   ':' has something on both sides, and the customer ends there;
 * - hq__record_parse() of a record whose seq and received_at are plain
 *   decimals accepts it with those values, and whatever it accepts lies in
 *   the record with the id and webhook id free of newlines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"
#include "record_int.h"
#include "fuzz.h"

#define SHARDS 4

/* A plain decimal of 1 to 18 digits; its value in *v. */
static int
plain_decimal(const char *s, size_t len, int64_t *v)
{
    *v = 0;
    if (len == 0 || len > 18)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        *v = *v * 10 + (s[i] - '0');
    }
    return 1;
}

static void
check_id(const char *id)
{
    const char *dash = strchr(id, '-');
    unsigned shard = 99;
    int64_t s = 0, n = 0;
    int want = dash != NULL && plain_decimal(id, (size_t)(dash - id), &s) &&
               plain_decimal(dash + 1, strlen(dash + 1), &n) && s < SHARDS && n >= 1;
    int rc = hq__job_id_shard(id, SHARDS, &shard);

    HQ_FUZZ_CHECK((rc == HQ_OK) == want, "id '%s': %s", id,
                  rc == HQ_OK ? "accepted" : "refused");
    if (rc == HQ_OK)
        HQ_FUZZ_CHECK(shard == (unsigned)s, "id '%s': shard %u", id, shard);
}

static void
check_key(const char *key)
{
    const char *colon = strrchr(key, ':');
    size_t len = strlen(key), custlen = 0;
    struct hq__err err;
    int want = len > 0 && strchr(key, '\n') == NULL && colon != NULL && colon > key &&
               colon[1] != '\0';
    int rc = hq__admin_check_key(key, &custlen, &err);

    HQ_FUZZ_CHECK((rc == HQ_OK) == want, "key '%s': %s", key,
                  rc == HQ_OK ? "accepted" : "refused");
    if (rc == HQ_OK)
        HQ_FUZZ_CHECK(custlen == (size_t)(colon - key), "key '%s': customer of %zu", key,
                      custlen);
}

static void
check_record(const char *rec, size_t len)
{
    const char *f[4], *p = rec, *end = rec + len;
    size_t flen[4];
    struct hq__record r;
    int64_t seq = 0, at = 0;
    int nf = 0, rc;

    for (; nf < 4; nf++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));

        if (nl == NULL)
            break;
        f[nf] = p;
        flen[nf] = (size_t)(nl - p);
        p = nl + 1;
    }
    rc = hq__record_parse(rec, len, &r);
    if (nf == 4 && flen[0] > 0 && plain_decimal(f[1], flen[1], &seq) &&
        plain_decimal(f[2], flen[2], &at)) {
        HQ_FUZZ_CHECK(rc == HQ_OK, "a plain record refused");
        HQ_FUZZ_CHECK(r.seq == seq && r.received_at_ms == at, "seq %lld at %lld",
                      (long long)r.seq, (long long)r.received_at_ms);
    }
    if (rc != HQ_OK)
        return;
    HQ_FUZZ_CHECK(r.id == rec && r.id_len > 0 && memchr(r.id, '\n', r.id_len) == NULL,
                  "id");
    HQ_FUZZ_CHECK(r.webhook_id >= rec && r.webhook_id + r.webhook_id_len < end + 1 &&
                      memchr(r.webhook_id, '\n', r.webhook_id_len) == NULL,
                  "webhook id");
    HQ_FUZZ_CHECK(r.body >= rec && r.body + r.body_len == end, "body");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl1 = memchr(in, '\n', size);
    const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', size - (size_t)(nl1 + 1 - in)) : NULL;
    char *id, *key;
    size_t idlen, keylen;

    if (nl1 == NULL || nl2 == NULL)
        return 0;
    idlen = (size_t)(nl1 - in);
    keylen = (size_t)(nl2 - nl1 - 1);
    id = malloc(idlen + 1);
    key = malloc(keylen + 1);
    if (id == NULL || key == NULL)
        abort();
    memcpy(id, in, idlen);
    id[idlen] = '\0';
    memcpy(key, nl1 + 1, keylen);
    key[keylen] = '\0';
    /* As C strings, from a URL path or a command line: no NUL inside. */
    if (strlen(id) == idlen)
        check_id(id);
    if (strlen(key) == keylen)
        check_key(key);
    check_record(nl2 + 1, size - (size_t)(nl2 + 1 - in));
    free(id);
    free(key);
    return 0;
}
