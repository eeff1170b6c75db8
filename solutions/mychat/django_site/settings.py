"""Settings for a streaming server and nothing else: no database, no sessions, no templates."""

import os
import secrets

# Nothing is signed (no sessions, no forms), so a fresh key per process is enough.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = False
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
ROOT_URLCONF = "mychat.django_site.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []  # no GZipMiddleware: it holds back or breaks event streams
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# Print a failing view's traceback in the server's log (Django only emails it when DEBUG is off).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}
