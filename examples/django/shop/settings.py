"""Settings of the example shop that receives hookq's deliveries
(docs/django.md). Everything that differs per deployment comes from the
environment:

  HOOKQ_DELIVER_SECRET  whsec_...: the [deliver] secret of hookq; set, every
                        delivery must carry a valid Standard Webhooks
                        signature (unset: not checked; development only)
  HOOKQ_ADMIN_URL       hookq's admin listener, for /api/limit
                        (default http://127.0.0.1:8081)
  HOOKQ_ADMIN_TOKEN     its [admin] token, if set
  SERVICE_API_URL       the external service's API (the app's own calls)
  SHOP_DB               the SQLite file (default ./shop.sqlite3)
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "hooks",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB", str(BASE_DIR / "shop.sqlite3")),
        # Deliveries arrive on several threads: wait for the write lock.
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

HOOKQ_DELIVER_SECRET = os.environ.get("HOOKQ_DELIVER_SECRET", "")
HOOKQ_ADMIN_URL = os.environ.get("HOOKQ_ADMIN_URL", "http://127.0.0.1:8081")
HOOKQ_ADMIN_TOKEN = os.environ.get("HOOKQ_ADMIN_TOKEN", "")
SERVICE_API_URL = os.environ.get("SERVICE_API_URL", "http://127.0.0.1:9000")

LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
