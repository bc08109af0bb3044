"""What the shop keeps of hookq's deliveries.

hookq delivers at least once: a delivery whose answer was lost (a timeout,
a deploy) comes again, with the same webhook-id (hookq's job id). The
unique webhook_id makes the second one a no-op; see views.receive.
"""
from django.db import models


class Delivery(models.Model):
    webhook_id = models.CharField(max_length=64, unique=True)  # hookq's job id
    key = models.CharField(max_length=300)      # "<customer>:<code>"
    seq = models.BigIntegerField()              # per key, from 1, in order
    code = models.CharField(max_length=128)
    customer = models.CharField(max_length=200)
    attempt = models.IntegerField()
    verified = models.BooleanField()            # the signature was checked
    payload = models.TextField()                # the body as received
    processed = models.BooleanField(default=False)
    received = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["key", "seq"])]
