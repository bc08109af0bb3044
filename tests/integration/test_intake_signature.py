"""Intake with intake.secret set: Standard Webhooks signatures over HTTP."""
import base64
import hashlib
import hmac
import time

import harness
from intakelib import Intake, envelope, expect_error

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = base64.b64decode(SECRET[len("whsec_"):])

suite = harness.Suite("intake_signature")
intake = None


def sign(msg_id, ts, body, key=KEY):
    mac = hmac.new(key, b"%s.%s.%s" % (msg_id.encode(), str(ts).encode(), body),
                   hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed(body, msg_id="msg_1", ts=None, sig=None):
    ts = int(time.time()) if ts is None else ts
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": sig or sign(msg_id, ts, body)}


@suite.test
def valid_signature_is_stored():
    body = envelope("s-ok").encode()
    r = intake.post(body, headers=signed(body, "msg_ok_%d" % time.time_ns()))
    assert r.status == 202, r


@suite.test
def each_missing_header_is_401():
    body = envelope("s-miss").encode()
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        h = signed(body)
        h[name] = None
        j = expect_error(intake.post(body, headers=h), 401, "bad_signature")
        assert name in j["detail"], j


@suite.test
def stale_or_future_timestamp_is_401():
    body = envelope("s-stale").encode()
    now = int(time.time())
    for ts in (now - 330, now + 330):
        expect_error(intake.post(body, headers=signed(body, ts=ts)), 401, "bad_signature")
    for ts in (now - 240, now + 240):
        h = signed(body, msg_id="msg_t_%d_%d" % (ts, time.time_ns()), ts=ts)
        assert intake.post(body, headers=h).status == 202


@suite.test
def non_numeric_timestamp_is_401():
    body = envelope("s-nn").encode()
    h = signed(body)
    h["webhook-timestamp"] = "soon"
    expect_error(intake.post(body, headers=h), 401, "bad_signature")


@suite.test
def wrong_signature_or_tampered_body_is_401():
    body = envelope("s-bad").encode()
    h = signed(body)
    sig = h["webhook-signature"]
    h["webhook-signature"] = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    expect_error(intake.post(body, headers=h), 401, "bad_signature")
    h = signed(body)
    expect_error(intake.post(body.replace(b"s-bad", b"s-bad2"), headers=h),
                 401, "bad_signature")
    # Signed with another secret.
    h = signed(body, sig=sign("msg_1", int(time.time()), body, key=b"other key"))
    expect_error(intake.post(body, headers=h), 401, "bad_signature")


@suite.test
def one_valid_entry_among_wrong_and_v2_passes():
    body = envelope("s-rot").encode()
    ts = int(time.time())
    mid = "msg_rot_%d" % time.time_ns()
    good = sign(mid, ts, body)
    h = signed(body, mid, ts,
               sig="v1,%s v2,%s %s" % (base64.b64encode(b"x" * 32).decode(), good[3:], good))
    assert intake.post(body, headers=h).status == 202
    h = signed(body, mid + "b", ts, sig="v2," + sign(mid + "b", ts, body)[3:])
    expect_error(intake.post(body, headers=h), 401, "bad_signature")


@suite.test
def signature_is_checked_before_the_body():
    # An unsigned invalid body is 401, not 400: nothing is parsed unsigned.
    expect_error(intake.post(b"not json"), 401, "bad_signature")


@suite.test
def the_secret_never_appears_in_logs():
    body = envelope("s-log").encode()
    intake.post(body)
    assert SECRET[6:] not in intake.stderr()


def main():
    global intake
    with harness.RedisServer() as r:
        with Intake(r.url, {"secret": SECRET}) as i:
            intake = i
            suite.run()


if __name__ == "__main__":
    main()
