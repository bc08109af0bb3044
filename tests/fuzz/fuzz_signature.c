/*
 * Fuzz target for Standard Webhooks signatures (signature.c): any secret
 * and any webhook-id, webhook-timestamp and webhook-signature values.
 *
 * Input: "SECRET\nID\nTIMESTAMP\nSIGNATURE\nBODY", split at the first four
 * newlines; a field the input does not reach is an absent header (NULL).
 * An invalid SECRET is replaced by a fixed key. The clock reads
 * 1614265330, the time of the Standard Webhooks test vector.
 *
 * Beyond never crashing or leaking: hq__sig_verify() gives a known result;
 * whenever the headers pass the id, timestamp and freshness checks, adding
 * the right "v1,<mac>" entry to the signature header (as a sender rotating
 * secrets does) makes it pass, and the fuzzed header alone passes only if
 * it holds that entry. hq__base64_decode() never writes past its buffer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "signature_int.h"

#define NOW 1614265330 /* the timestamp of the Standard Webhooks test vector */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *f[5] = {NULL, NULL, NULL, NULL, NULL};
    size_t flen[5] = {0, 0, 0, 0, 0};
    const char *p = (const char *)data, *end = p + size;
    struct hq__sig_key key;
    struct hq__err err;
    char want[HQ_SIG_B64_LEN + 1], *secret, *both;
    unsigned char *dec;
    long n;
    int rc, rc2;

    for (int i = 0; i < 5 && p <= end; i++) {
        const char *nl = i < 4 ? memchr(p, '\n', (size_t)(end - p)) : NULL;

        f[i] = p;
        flen[i] = nl ? (size_t)(nl - p) : (size_t)(end - p);
        p += flen[i] + 1;
        if (nl == NULL)
            break;
    }

    /* The secret, as intake reads [intake] secret (a C string). */
    secret = malloc(flen[0] + 1);
    if (secret == NULL)
        abort();
    memcpy(secret, f[0], flen[0]);
    secret[flen[0]] = '\0';
    if (hq__sig_key_parse(secret, &key, &err) != HQ_OK) {
        memcpy(key.key, "fuzz-key", 8);
        key.len = 8;
    }
    HQ_FUZZ_CHECK(key.len >= 1 && key.len <= HQ_SIG_KEY_MAX, "key of %zu bytes", key.len);
    /* Decoding into a buffer of exactly the bytes it may need. */
    dec = malloc(flen[0] / 4 * 3 + 1);
    if (dec == NULL)
        abort();
    n = hq__base64_decode(f[0], flen[0], dec, flen[0] / 4 * 3);
    HQ_FUZZ_CHECK(n >= -1 && n <= (long)(flen[0] / 4 * 3), "decoded %ld bytes", n);
    free(dec);
    free(secret);

    rc = hq__sig_verify(&key, f[1], flen[1], f[2], flen[2], f[3], flen[3], f[4],
                        flen[4], NOW);
    HQ_FUZZ_CHECK(rc >= HQ_SIG_OK && rc <= HQ_SIG_MISMATCH, "result %d", rc);
    HQ_FUZZ_CHECK(strcmp(hq__sig_result_text(rc), "signature check failed") != 0,
                  "result %d has no text", rc);
    if (rc != HQ_SIG_OK && rc != HQ_SIG_MISMATCH)
        return 0;

    /* The id and timestamp passed: the right entry must pass, and only it. */
    HQ_FUZZ_CHECK(hq__sig_sign(&key, f[1], flen[1], f[2], flen[2], f[4], flen[4],
                               want) == HQ_OK, "sign failed");
    HQ_FUZZ_CHECK(strlen(want) == HQ_SIG_B64_LEN, "signature of %zu chars", strlen(want));
    if (rc == HQ_SIG_OK) {
        int found = 0;

        for (size_t i = 0; i + 3 + HQ_SIG_B64_LEN <= flen[3]; i++)
            if ((i == 0 || f[3][i - 1] == ' ') &&
                (i + 3 + HQ_SIG_B64_LEN == flen[3] || f[3][i + 3 + HQ_SIG_B64_LEN] == ' ') &&
                memcmp(f[3] + i, "v1,", 3) == 0 &&
                memcmp(f[3] + i + 3, want, HQ_SIG_B64_LEN) == 0)
                found = 1;
        HQ_FUZZ_CHECK(found, "a header without the right entry passed");
    }
    both = malloc(flen[3] + 4 + HQ_SIG_B64_LEN);
    if (both == NULL)
        abort();
    memcpy(both, f[3], flen[3]);
    both[flen[3]] = ' ';
    memcpy(both + flen[3] + 1, "v1,", 3);
    memcpy(both + flen[3] + 4, want, HQ_SIG_B64_LEN);
    rc2 = hq__sig_verify(&key, f[1], flen[1], f[2], flen[2], both,
                         flen[3] + 4 + HQ_SIG_B64_LEN, f[4], flen[4], NOW);
    free(both);
    HQ_FUZZ_CHECK(rc2 == HQ_SIG_OK, "the right entry after '%.*s' gives %s",
                  (int)flen[3], f[3], hq__sig_result_text(rc2));
    return 0;
}
