/*
 * Standard Webhooks signature verification (see signature_int.h).
 *
 * DESIGN: the MAC is computed once per request over the three parts without
 * copying the body, encoded in base64, and compared with each v1 entry of the
 * header using CRYPTO_memcmp, so the time taken does not depend on how much
 * of a forged signature is right. The HMAC implementation is fetched from
 * OpenSSL once per process.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "signature_int.h"

#define SECRET_PREFIX "whsec_"

static EVP_MAC *hmac_impl;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void
hmac_fetch(void)
{
    hmac_impl = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static int
is_b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/';
}

long
hq__base64_decode(const char *in, size_t len, unsigned char *out, size_t size)
{
    size_t pad = 0;
    unsigned char *tmp;
    int n;

    if (len == 0 || len % 4 != 0 || len > (size_t)INT32_MAX)
        return -1;
    if (in[len - 1] == '=')
        pad++;
    if (in[len - 2] == '=')
        pad++;
    /* EVP_DecodeBlock skips blanks and does not check padding: we do. */
    for (size_t i = 0; i < len - pad; i++)
        if (!is_b64_char((unsigned char)in[i]))
            return -1;
    if (len / 4 * 3 - pad > size)
        return -1;
    tmp = malloc(len / 4 * 3 + 1);
    if (tmp == NULL)
        return -1;
    n = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len);
    if (n < 0 || (size_t)n < pad) {
        free(tmp);
        return -1;
    }
    n -= (int)pad;
    memcpy(out, tmp, (size_t)n);
    OPENSSL_cleanse(tmp, len / 4 * 3 + 1);
    free(tmp);
    return n;
}

int
hq__sig_key_parse(const char *secret, struct hq__sig_key *key,
                  struct hq__err *err)
{
    size_t plen = strlen(SECRET_PREFIX);
    long n;

    if (secret == NULL || secret[0] == '\0')
        return hq__err_set(err, HQ_EINVAL, "the signing secret is empty");
    if (strncmp(secret, SECRET_PREFIX, plen) == 0)
        secret += plen;
    n = hq__base64_decode(secret, strlen(secret), key->key, sizeof(key->key));
    if (n <= 0)
        return hq__err_set(err, HQ_EINVAL,
                           "the signing secret is not 'whsec_' followed by "
                           "base64 of at most %d bytes", HQ_SIG_KEY_MAX);
    key->len = (size_t)n;
    return HQ_OK;
}

int
hq__sig_sign(const struct hq__sig_key *key, const char *id, size_t idlen,
             const char *ts, size_t tslen, const void *body, size_t bodylen,
             char *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    int rc = HQ_ENOMEM;

    pthread_once(&hmac_once, hmac_fetch);
    if (hmac_impl == NULL)
        return HQ_ENOMEM;
    ctx = EVP_MAC_CTX_new(hmac_impl);
    if (ctx == NULL)
        goto out;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (!EVP_MAC_init(ctx, key->key, key->len, params) ||
        !EVP_MAC_update(ctx, (const unsigned char *)id, idlen) ||
        !EVP_MAC_update(ctx, (const unsigned char *)".", 1) ||
        !EVP_MAC_update(ctx, (const unsigned char *)ts, tslen) ||
        !EVP_MAC_update(ctx, (const unsigned char *)".", 1) ||
        !EVP_MAC_update(ctx, body, bodylen) ||
        !EVP_MAC_final(ctx, mac, &maclen, sizeof(mac)) || maclen != 32)
        goto out;
    EVP_EncodeBlock((unsigned char *)out, mac, (int)maclen);
    rc = HQ_OK;
out:
    EVP_MAC_CTX_free(ctx);
    return rc;
}

int
hq__sig_verify(const struct hq__sig_key *key, const char *id, size_t idlen,
               const char *ts, size_t tslen, const char *sig, size_t siglen,
               const void *body, size_t bodylen, int64_t now)
{
    char want[HQ_SIG_B64_LEN + 1];
    int64_t t;
    int matched = 0;
    size_t i = 0;

    if (id == NULL || idlen == 0)
        return HQ_SIG_NO_ID;
    if (ts == NULL || tslen == 0)
        return HQ_SIG_NO_TIMESTAMP;
    if (sig == NULL || siglen == 0)
        return HQ_SIG_NO_SIGNATURE;
    if (hq__parse_decimal(ts, tslen, &t) != 0)
        return HQ_SIG_BAD_TIMESTAMP;
    if (t < now - HQ_SIG_TOLERANCE_S || t > now + HQ_SIG_TOLERANCE_S)
        return HQ_SIG_STALE;
    if (hq__sig_sign(key, id, idlen, ts, tslen, body, bodylen, want) != HQ_OK)
        return HQ_SIG_ERROR;

    /* Entries are "v1,<base64>" separated by spaces; check them all. */
    while (i < siglen) {
        size_t start, end;

        while (i < siglen && sig[i] == ' ')
            i++;
        start = i;
        while (i < siglen && sig[i] != ' ')
            i++;
        end = i;
        if (end - start == 3 + HQ_SIG_B64_LEN &&
            memcmp(sig + start, "v1,", 3) == 0 &&
            CRYPTO_memcmp(sig + start + 3, want, HQ_SIG_B64_LEN) == 0)
            matched = 1;
    }
    OPENSSL_cleanse(want, sizeof(want));
    return matched ? HQ_SIG_OK : HQ_SIG_MISMATCH;
}

const char *
hq__sig_result_text(int result)
{
    switch (result) {
    case HQ_SIG_OK: return "signature valid";
    case HQ_SIG_NO_ID: return "missing webhook-id header";
    case HQ_SIG_NO_TIMESTAMP: return "missing webhook-timestamp header";
    case HQ_SIG_NO_SIGNATURE: return "missing webhook-signature header";
    case HQ_SIG_BAD_TIMESTAMP: return "webhook-timestamp is not a number of seconds";
    case HQ_SIG_STALE: return "webhook-timestamp is more than 5 minutes away from now";
    case HQ_SIG_MISMATCH: return "no v1 signature matches";
    }
    return "signature check failed";
}
