"""The endpoint hookq delivers to (`deliver = http://127.0.0.1:8000/hooks/CODE`).

What hookq does with the answer (docs/processing.md):
- 2xx: done; the key's next job follows. Answer fast: store, then work
  elsewhere (a queue of your own, a cron), since the key waits meanwhile
  and hookq gives a delivery [deliver] timeout (30 s) before it retries.
- 4xx (but 408 and 429): a permanent failure: the job goes to hookq's
  dead-letter list (or holds its key, with on_failure = hold) at once, with
  no retry. Answer 4xx only for a delivery that can never succeed.
- 408, 429, 5xx, a timeout, a dropped connection: retried with backoff,
  holding the key's place (in order: the next job of the key waits).

hookq delivers at least once, so the same delivery may come twice (its
answer was lost); the unique webhook-id makes the second a no-op.
"""
import json

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .models import Delivery
from .signature import BadSignature, verify


@csrf_exempt          # hookq is not a browser: the signature authenticates it
@require_POST
def receive(request, code):
    body = request.body   # the raw bytes: what the signature covers
    secret = settings.HOOKQ_DELIVER_SECRET
    if secret:
        try:
            webhook_id = verify(secret, request.headers, body)
        except BadSignature as e:
            # A 4xx dead-letters the job in hookq: right for a forgery, and
            # a sign of a wrong secret otherwise (see docs/django.md).
            return JsonResponse({"error": "bad_signature", "detail": str(e)}, status=401)
    else:
        webhook_id = request.headers.get("webhook-id") or request.headers.get("Hookq-Id")
    try:
        job = json.loads(body)
        key, seq = job["key"], int(job["seq"])
    except (ValueError, KeyError, TypeError) as e:
        return JsonResponse({"error": "bad_payload", "detail": str(e)}, status=400)
    if not webhook_id:
        return JsonResponse({"error": "bad_payload", "detail": "no webhook-id"}, status=400)
    try:
        with transaction.atomic():
            Delivery.objects.create(
                webhook_id=webhook_id, key=key, seq=seq, code=job.get("code", code),
                customer=job.get("customer", ""), attempt=int(job.get("attempt", 1)),
                verified=bool(secret), payload=body.decode("utf-8"))
    except IntegrityError:
        # Seen before: at-least-once delivery sent it again. Done already.
        return JsonResponse({"duplicate": True}, status=200)
    return JsonResponse({"stored": True}, status=200)
