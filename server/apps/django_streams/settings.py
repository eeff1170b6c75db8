"""Settings of the course's Django project: a streaming server and nothing else.

Two switches come from the environment, so that one project can show both sides of a trap:

- ``DJANGO_GZIP=1`` adds Django's `GZipMiddleware`, which lesson 07 measures on an event
  stream; ``DJANGO_GZIP=safe`` adds the fix, which leaves event streams alone.
- ``DJANGO_ALLOWED_HOSTS`` (comma-separated) for a proxy or a hub in front; loopback by default.
  A request naming any other Host is a 400 (`hosts.allowed_hosts_only`).

``DJANGO_LOG_TAIL`` names the file `/log-tail` follows (none by default: the view answers 404).
"""

import os
import secrets

# Nothing is signed (no sessions, no CSRF forms), so a fresh key per process is enough.
# A project that signs cookies must set DJANGO_SECRET_KEY, the same for every worker.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = False
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
    if host.strip()
]
ROOT_URLCONF = "server.apps.django_streams.urls"
INSTALLED_APPS = ["django_eventstream"]  # only for the comparison in library.py
DATABASES: dict[str, dict[str, str]] = {}
GZIP = {
    "1": "django.middleware.gzip.GZipMiddleware",
    "safe": "server.apps.django_streams.middleware.EventStreamSafeGZipMiddleware",
}
# Django enforces ALLOWED_HOSTS only where something asks for the host: the first middleware does.
MIDDLEWARE = ["server.apps.django_streams.hosts.allowed_hosts_only"]
if os.environ.get("DJANGO_GZIP"):
    MIDDLEWARE.append(GZIP[os.environ["DJANGO_GZIP"]])
USE_TZ = True
LOG_TAIL_FILE = os.environ.get("DJANGO_LOG_TAIL", "")
