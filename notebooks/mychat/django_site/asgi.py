"""For uvicorn (ASGI): `uvicorn mychat.django_site.asgi:application`."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mychat.django_site.settings")
application = get_asgi_application()
