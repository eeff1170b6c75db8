"""The WSGI entry point: `gunicorn server.apps.django_streams.wsgi:application`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.apps.django_streams.settings")
application = get_wsgi_application()
