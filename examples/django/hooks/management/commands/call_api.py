"""The app's own API calls, through the shared budget:

    python3 manage.py call_api CUSTOMER TOKEN N

GETs /posts/<i> from the service N times for the customer, each after
hookq_limit.acquire() has granted it. Prints one line per call."""
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand

from hookq_limit import acquire


class Command(BaseCommand):
    help = "make N API calls for a customer within hookq's shared budget"

    def add_arguments(self, parser):
        parser.add_argument("customer")
        parser.add_argument("token")
        parser.add_argument("n", type=int)

    def handle(self, customer, token, n, **opts):
        for i in range(n):
            acquire(customer=customer, endpoint="GET /posts/{}")
            req = urllib.request.Request(
                "%s/posts/%d" % (settings.SERVICE_API_URL.rstrip("/"), 1000 + i),
                headers={"Authorization": "Bearer " + token})
            with urllib.request.urlopen(req, timeout=10) as r:
                self.stdout.write("GET /posts/%d -> %d" % (1000 + i, r.status))
