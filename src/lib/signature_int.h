/*
 * Standard Webhooks signatures (https://www.standardwebhooks.com): the
 * sender signs "<webhook-id>.<webhook-timestamp>.<body>" with HMAC-SHA256
 * keyed by the base64-decoded secret, and sends the base64 MAC in the
 * `webhook-signature` header as space-separated "v1,<base64>" entries (more
 * than one during a secret rotation). Entries of other versions are ignored.
 *
 * Secrets are written "whsec_<base64>". A secret without the "whsec_" prefix
 * is read as the bare base64 key, as the reference libraries do.
 */
#ifndef HQ_SIGNATURE_INT_H
#define HQ_SIGNATURE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common_int.h"

#define HQ_SIG_KEY_MAX 256       /* decoded key bytes */
#define HQ_SIG_TOLERANCE_S 300   /* timestamps within +-5 minutes pass */
#define HQ_SIG_B64_LEN 44        /* base64 of a 32-byte HMAC-SHA256 */

struct hq__sig_key {
    unsigned char key[HQ_SIG_KEY_MAX];
    size_t len; /* >= 1 */
};

/* Why a verification failed; HQ_SIG_OK (0) when it passed. */
enum hq__sig_result {
    HQ_SIG_OK = 0,
    HQ_SIG_NO_ID,          /* webhook-id header absent or empty */
    HQ_SIG_NO_TIMESTAMP,   /* webhook-timestamp header absent or empty */
    HQ_SIG_NO_SIGNATURE,   /* webhook-signature header absent or empty */
    HQ_SIG_BAD_TIMESTAMP,  /* not a plain decimal number of seconds */
    HQ_SIG_STALE,          /* more than HQ_SIG_TOLERANCE_S away from now */
    HQ_SIG_MISMATCH,       /* no v1 entry matches */
    HQ_SIG_ERROR,          /* the crypto library failed */
};

/*
 * Decode `secret` ("whsec_<base64>" or bare base64) into `key`. Returns
 * HQ_OK, or HQ_EINVAL with the reason in `err` (the secret itself is never
 * written into messages).
 */
int hq__sig_key_parse(const char *secret, struct hq__sig_key *key,
                      struct hq__err *err);

/*
 * Compute the base64 signature of (id, timestamp, body) into `out`, which
 * must hold HQ_SIG_B64_LEN + 1 bytes (NUL-terminated). Returns HQ_OK or
 * HQ_ENOMEM when the crypto library fails.
 */
int hq__sig_sign(const struct hq__sig_key *key, const char *id, size_t idlen,
                 const char *ts, size_t tslen, const void *body,
                 size_t bodylen, char *out);

/*
 * Verify the three header values (NULL or empty when absent) against `body`
 * at time `now` (Unix seconds). Any one matching v1 entry passes; the
 * comparison is constant-time. Returns an enum hq__sig_result.
 */
int hq__sig_verify(const struct hq__sig_key *key, const char *id, size_t idlen,
                   const char *ts, size_t tslen, const char *sig,
                   size_t siglen, const void *body, size_t bodylen,
                   int64_t now);

/* A short text for a result, for the "detail" of a 401. */
const char *hq__sig_result_text(int result);

/*
 * Decode standard base64 (with padding) of length `len` into `out`
 * (capacity `size`). Returns the decoded length, or -1 when the input is not
 * valid base64 or does not fit.
 */
long hq__base64_decode(const char *in, size_t len, unsigned char *out,
                       size_t size);

#endif /* HQ_SIGNATURE_INT_H */
