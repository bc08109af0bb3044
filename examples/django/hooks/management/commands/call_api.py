"""The app's own API calls, through the shared budget:

    python3 manage.py call_api CUSTOMER TOKEN N

GETs /posts/<i> from the service N times for the customer, each right
after hookq_limit.acquire() has granted it, on one kept-alive connection
(a call that must connect first leaves later; [api] margin is the slack
for that). Prints one line per call."""
import http.client
import urllib.parse

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
        api = urllib.parse.urlsplit(settings.SERVICE_API_URL)
        cls = http.client.HTTPSConnection if api.scheme == "https" else http.client.HTTPConnection
        conn = cls(api.hostname, api.port, timeout=10)
        conn.connect()
        try:
            for i in range(n):
                acquire(customer=customer, endpoint="GET /posts/{}")
                path = "%s/posts/%d" % (api.path.rstrip("/"), 1000 + i)
                conn.request("GET", path, headers={"Authorization": "Bearer " + token})
                r = conn.getresponse()
                r.read()
                self.stdout.write("GET %s -> %d" % (path, r.status))
        finally:
            conn.close()
