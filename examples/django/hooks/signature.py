"""Standard Webhooks verification, stdlib only (https://www.standardwebhooks.com).

hookq signs each http delivery when `[deliver] secret = whsec_<base64>` is
set: `webhook-id` (the job id, the same on every attempt),
`webhook-timestamp` (Unix seconds at sending) and `webhook-signature:
v1,<base64 of HMAC-SHA256(key, "id.timestamp.body")>`, where key is the
base64-decoded part of the secret after "whsec_". Several space-separated
entries may be present (during a secret rotation); one matching v1 entry
is enough, other versions are ignored.
"""
import base64
import hashlib
import hmac
import time

TOLERANCE_S = 5 * 60


class BadSignature(Exception):
    pass


def secret_key(secret):
    if not secret.startswith("whsec_"):
        raise ValueError("a Standard Webhooks secret starts with whsec_")
    return base64.b64decode(secret[len("whsec_"):])


def sign(secret, msg_id, timestamp, body):
    """The v1 signature of body (bytes), as hookq computes it."""
    signed = b"%s.%d.%s" % (msg_id.encode(), int(timestamp), body)
    mac = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secret, headers, body, now=None):
    """Check the webhook-* headers (a mapping, case as Django's
    request.headers gives) against body, the raw bytes (request.body: never
    a re-serialisation, which would change the bytes). Returns the
    webhook-id; raises BadSignature saying what is wrong."""
    msg_id = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sigs = headers.get("webhook-signature")
    if not msg_id or not ts or not sigs:
        raise BadSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        t = int(ts)
    except ValueError:
        raise BadSignature("webhook-timestamp is not a number")
    now = time.time() if now is None else now
    if abs(now - t) > TOLERANCE_S:
        raise BadSignature("webhook-timestamp is more than 5 minutes away")
    want = sign(secret, msg_id, t, body).encode()
    for entry in sigs.split():
        if entry.startswith("v1,") and hmac.compare_digest(entry.encode(), want):
            return msg_id
    raise BadSignature("no v1 signature matches")
