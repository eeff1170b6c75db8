"""The ASGI entry point: `uvicorn server.apps.django_streams.asgi:application`."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.apps.django_streams.settings")
application = get_asgi_application()
